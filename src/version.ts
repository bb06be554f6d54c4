/** The package's version (`package.json`'s, which a test keeps equal to it). */
export const version = "0.1.0"

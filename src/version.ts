/** The package's version (`package.json`), browser-safe; a test keeps them equal. */
export const version = "0.1.0"

// Webhook targets the SSRF guard must refuse.

/** Accepted before ipaddr.js classified them (the list): each leads into a network a webhook must not reach. */
export const formerlyAccepted: ReadonlyArray<readonly [string, string]> = [
  ["[64:ff9b::a9fe:a9fe]", "NAT64 to the metadata address 169.254.169.254"],
  ["[64:ff9b::7f00:1]", "NAT64 to 127.0.0.1"],
  ["[::127.0.0.1]", "IPv4-compatible 127.0.0.1"],
  ["[::ffff:0:7f00:1]", "IPv4-translated (RFC 6145) 127.0.0.1"],
  ["[2002:7f00:1::]", "6to4 through 127.0.0.1"],
  ["[fec0::1]", "site-local (deprecated)"],
  ["192.0.2.1", "documentation (TEST-NET-1)"],
  ["198.18.0.1", "benchmarking"],
  ["192.0.0.1", "IETF protocol assignments"],
  ["192.88.99.1", "6to4 relay anycast"]
]

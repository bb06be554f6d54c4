import { assert, describe, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { checkTarget, isPrivateAddress } from "../src/Webhooks/security.js"
import { formerlyAccepted } from "./support/ssrf.js"

/** Refused before too, and still. */
const alwaysRefused = [
  "127.0.0.1", "127.1.2.3", "[::1]", "[::ffff:127.0.0.1]", "0.0.0.0", "[::]", "10.1.2.3", "172.16.0.1", "192.168.0.10",
  "100.64.0.1", "169.254.169.254", "[fd00::1]", "[fe80::1]", "224.0.0.1", "255.255.255.255", "240.0.0.1",
  // the embedded address of a Teredo client (stored inverted) or server, NAT64's local-use prefix, unallocated IPv6
  "[2001:0:7f00:1::]", "[2001:0:5db8:d70e::3fff:fffe]", "[64:ff9b:1::7f00:1]", "[4000::1]", "[2001:db8::1]"
]

/** Public: the same forms leading to a public IPv4 address, and plain public addresses. */
const publicOnes = [
  "93.184.215.14", "8.8.8.8", "[2606:2800:21f:cb07:6820:80da:af6b:8b2c]", "[::ffff:93.184.215.14]",
  "[64:ff9b::5db8:d70e]", "[2002:5db8:d70e::1]", "[2001:0:5db8:d70e::a247:28f1]"
]

const host = (literal: string) => literal.replace(/^\[|\]$/g, "")

describe("webhook targets", () => {
  it("every special-purpose address is refused; only public unicast passes", () => {
    for (const [address, what] of formerlyAccepted) assert.isTrue(isPrivateAddress(host(address)), `${address}: ${what}`)
    for (const address of alwaysRefused) assert.isTrue(isPrivateAddress(host(address)), address)
    for (const address of publicOnes) assert.isFalse(isPrivateAddress(host(address)), address)
    for (const notAnAddress of ["", "example.com", "1.2.3", "::g"]) {
      assert.isTrue(isPrivateAddress(notAnAddress), notAnAddress)
    }
  })

  it.effect("checkTarget refuses each of them as a URL (422 WebhookTargetRefused), and passes a public one", () =>
    Effect.gen(function*() {
      for (const address of [...formerlyAccepted.map(([a]) => a), ...alwaysRefused]) {
        const result = yield* Effect.either(checkTarget("url", `https://${address}/hook`, false))
        assert.isTrue(Either.isLeft(result) && result.left._tag === "WebhookTargetRefused", address)
      }
      for (const address of publicOnes) {
        assert.strictEqual(yield* checkTarget("url", `https://${address}/hook`, false), `https://${address}/hook`)
      }
      // allowed for development
      assert.strictEqual(yield* checkTarget("url", "http://[::127.0.0.1]/hook", true), "http://[::127.0.0.1]/hook")
    }))
})

import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { Api } from "../Api.js"
import { CurrentUser } from "../Domain/Auth.js"
import { WebhookList } from "../Domain/Webhook.js"
import { asOwner } from "../Http/Waits.js"
import { Webhooks } from "../Webhooks.js"

/** The webhook endpoints: decoded by the API's schemas, answered by `Webhooks` for the caller's owner scope. */
export const WebhooksLive = HttpApiBuilder.group(Api, "webhooks", (handlers) =>
  Effect.gen(function*() {
    const hooks = yield* Webhooks
    return handlers
      .handle("list", () =>
        asOwner(({ owner }) => Effect.map(hooks.list(owner), (webhooks) => WebhookList.make({ webhooks }))))
      .handle("create", ({ payload }) => Effect.flatMap(CurrentUser, (user) => hooks.create(user.sub, payload)))
      .handle("get", ({ path }) => asOwner(({ owner }) => hooks.get(path.id, owner)))
      .handle("update", ({ path, payload }) => asOwner(({ owner }) => hooks.update(path.id, owner, payload)))
      .handle("delete", ({ path }) => asOwner(({ owner }) => hooks.remove(path.id, owner)))
      .handle("rotateSecret", ({ path }) => asOwner(({ owner }) => hooks.rotateSecret(path.id, owner)))
      .handle("deliveries", ({ path, urlParams }) =>
        asOwner(({ owner }) => hooks.deliveries(path.id, owner, urlParams)))
  }))

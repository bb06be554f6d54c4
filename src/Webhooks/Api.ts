import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Authentication, RateLimit } from "../Auth/Api.js"
import { InvalidInput, UnsupportedMediaType } from "../Domain/Errors.js"
import { DeliveriesParams, WebhookBody, WebhookPatch, WebhookPath } from "../Domain/Requests.js"
import {
  DeliveryPage,
  WebhookEndpoint,
  WebhookList,
  WebhookNotFound,
  WebhookTargetRefused,
  WebhookWithSecret
} from "../Domain/Webhook.js"

const doc = (summary: string, description: string) => OpenApi.annotations({ summary, description })

export class WebhooksApi extends HttpApiGroup.make("webhooks")
  .add(
    HttpApiEndpoint.get("list", "/v1/webhooks")
      .addSuccess(WebhookList)
      .annotateContext(doc("List webhook endpoints", "The caller's endpoints (an admin's: all), without secrets."))
  )
  .add(
    HttpApiEndpoint.post("create", "/v1/webhooks")
      .setPayload(WebhookBody)
      .addError(UnsupportedMediaType)
      .addSuccess(WebhookWithSecret, { status: 201 })
      .addError(InvalidInput)
      .addError(WebhookTargetRefused)
      .annotateContext(doc(
        "Create a webhook endpoint",
        "Registers a URL for events of the caller's jobs; answers its signing secret (whsec_…) once. A target " +
          "in a private, loopback or link-local network is refused (422) unless the server allows it."
      ))
  )
  .add(
    HttpApiEndpoint.get("get", "/v1/webhooks/:id")
      .setPath(WebhookPath)
      .addSuccess(WebhookEndpoint)
      .addError(WebhookNotFound)
      .annotateContext(doc("Read a webhook endpoint", "One of the caller's endpoints, without its secret."))
  )
  .add(
    HttpApiEndpoint.put("update", "/v1/webhooks/:id")
      .setPath(WebhookPath)
      .setPayload(WebhookPatch)
      .addError(UnsupportedMediaType)
      .addSuccess(WebhookEndpoint)
      .addError(InvalidInput)
      .addError(WebhookNotFound)
      .addError(WebhookTargetRefused)
      .annotateContext(doc("Change a webhook endpoint", "Changes the fields given: url, eventTypes, description, active"))
  )
  .add(
    HttpApiEndpoint.del("delete", "/v1/webhooks/:id")
      .setPath(WebhookPath)
      .addSuccess(WebhookEndpoint)
      .addError(WebhookNotFound)
      .annotateContext(doc("Delete a webhook endpoint", "Removes the endpoint; it receives nothing more."))
  )
  .add(
    HttpApiEndpoint.post("rotateSecret", "/v1/webhooks/:id/rotate-secret")
      .setPath(WebhookPath)
      .addSuccess(WebhookWithSecret)
      .addError(WebhookNotFound)
      .annotateContext(doc(
        "Rotate a signing secret",
        "Answers a new secret; the old one keeps signing beside it for JOBWATCH_WEBHOOK_SECRET_OVERLAP."
      ))
  )
  .add(
    HttpApiEndpoint.get("deliveries", "/v1/webhooks/:id/deliveries")
      .setPath(WebhookPath)
      .setUrlParams(DeliveriesParams)
      .addSuccess(DeliveryPage)
      .addError(InvalidInput)
      .addError(WebhookNotFound)
      .annotateContext(doc("List deliveries", "A page of the endpoint's deliveries, newest first, with every attempt."))
  )
  .middleware(RateLimit)
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Webhook endpoints: signed, retried deliveries of your jobs' events")
{}

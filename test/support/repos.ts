import { Effect, Layer } from "effect"
import { EventsRepo } from "../../src/EventLog/EventsRepo.js"
import { JobsRepo } from "../../src/Jobs/JobsRepo.js"
import { PurgeRepo } from "../../src/Jobs/PurgeRepo.js"
import { Transitions } from "../../src/Jobs/Transitions.js"
import { ClaimsRepo } from "../../src/Workers/ClaimsRepo.js"
import { Artefacts } from "../../src/Workers/Artefacts.js"
import { ProgressRepo } from "../../src/Workers/ProgressRepo.js"
import { ReaperRepo } from "../../src/Workers/ReaperRepo.js"
import { JobTypesRepo } from "../../src/JobLib/JobTypesRepo.js"

/**
 * Every SQL entry point of the job lifecycle in one service, for tests that drive jobs below the public services:
 * the jobs repository, the transitions (which publish to `LocalEvents` like the services do), claims, the event
 * reads, the reaper's statements and progress writes.
 */
export class Repos extends Effect.Service<Repos>()("jobwatch-test/Repos", {
  dependencies: [
    JobsRepo.Default,
    Transitions.Default,
    ClaimsRepo.Default,
    EventsRepo.Default,
    ReaperRepo.Default,
    ProgressRepo.Default
  ],
  effect: Effect.gen(function*() {
    const { _tag: _jobs, ...jobs } = yield* JobsRepo
    const { _tag: _transitions, ...transitions } = yield* Transitions
    const { _tag: _claims, ...claims } = yield* ClaimsRepo
    const { _tag: _events, ...events } = yield* EventsRepo
    const { _tag: _reaper, ...reaper } = yield* ReaperRepo
    const { _tag: _progress, ...progress } = yield* ProgressRepo
    return { ...jobs, ...transitions, ...claims, ...events, ...reaper, ...progress } as const
  })
}) {}

/** `Repos` and every repository it is made of, as services of their own (for layers built without dependencies). */
export const allRepos = Layer.mergeAll(
  Repos.Default,
  JobsRepo.Default,
  Transitions.Default,
  ClaimsRepo.Default,
  EventsRepo.Default,
  ReaperRepo.Default,
  ProgressRepo.Default,
  Artefacts.Default,
  PurgeRepo.Default,
  JobTypesRepo.Default
)

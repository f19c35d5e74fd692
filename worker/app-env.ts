/** The Hono environment of the Worker: its bindings, and the grant `requireToken()` verified. */
import type { Grant } from "../schema";

export type AppEnv = { Bindings: Env; Variables: { grant: Grant } };

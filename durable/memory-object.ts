import { DurableObject } from "cloudflare:workers";
export class MemoryObject extends DurableObject<Env> {}

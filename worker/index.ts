export { MemoryObject } from "../durable/memory-object";
export default { fetch: () => new Response("ok") };

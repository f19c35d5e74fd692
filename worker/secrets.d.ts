// Secrets are not in wrangler.toml, so `wrangler types` cannot see them; declared here.
interface Env {
  /** HMAC key of capability tokens (`wrangler secret put AUTH_SECRET`); unset: auth off. */
  AUTH_SECRET?: string;
}

// Errors the collector's command line tells apart, in a module of their own so the CLI can name them
// without loading the server (fastify and the API) for commands that never serve.

/** A setting `serve` cannot run with (plain HTTP off loopback, …); the message says which and why. */
export class CollectorConfigError extends Error {}

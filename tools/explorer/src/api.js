// The gateway's GraphQL API over HTTP, and its subscriptions over graphql-transport-ws.
import { createClient } from "graphql-ws";

export const GRAPHQL_PATH = "/graphql";

export function apiKey() {
  try { return localStorage.getItem("nightjar.apiKey") || ""; } catch { return ""; }
}

export class ApiError extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join("; "));
    this.errors = errors;
    this.code = errors[0]?.extensions?.code;
  }
}

/**
 * One GraphQL request; the data, or an ApiError with the gateway's messages.  With
 * partial, data that came with errors (a field whose backend is down) is returned, the
 * errors under data.__errors.
 */
export async function gql(query, variables = {}, partial = false) {
  const headers = { "content-type": "application/json" };
  const key = apiKey();
  if (key) headers["x-api-key"] = key;
  const response = await fetch(GRAPHQL_PATH, { method: "POST", headers, body: JSON.stringify({ query, variables }) });
  let body;
  try { body = await response.json(); } catch { throw new ApiError([{ message: `the gateway answered HTTP ${response.status}` }]); }
  if (body.errors?.length && partial && body.data && Object.values(body.data).some((v) => v !== null)) {
    Object.defineProperty(body.data, "__errors", { value: body.errors, enumerable: false });
    return body.data;
  }
  if (body.errors?.length) throw new ApiError(body.errors);
  if (!response.ok) throw new ApiError([{ message: `HTTP ${response.status}` }]);
  return body.data;
}

// One WebSocket for the page, reconnecting for ever (with backoff); listeners hear of
// every (re)connection so that pages can fetch what they missed while it was down.
let client = null;
const connectionListeners = new Set();
export const connection = { state: "connecting", connects: 0 };

function wsClient() {
  if (client) return client;
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${GRAPHQL_PATH}`;
  client = createClient({
    url,
    lazy: true,
    keepAlive: 10000,
    retryAttempts: Infinity,
    shouldRetry: () => true,
    retryWait: async (retries) => new Promise((r) => setTimeout(r, Math.min(250 * 2 ** retries, 5000))),
    on: {
      connected: () => {
        connection.state = "connected"; connection.connects += 1;
        for (const listener of connectionListeners) listener(connection);
      },
      closed: () => { connection.state = "reconnecting"; for (const listener of connectionListeners) listener(connection); },
    },
  });
  return client;
}

/** Listen to (re)connections: f({state, connects}); returns the unsubscribe function. */
export function onConnection(f) {
  connectionListeners.add(f);
  return () => connectionListeners.delete(f);
}

/** Subscribe; next(data) per event, error(err) on a GraphQL error. Returns the unsubscribe. */
export function subscribe(query, variables, next, error = console.error) {
  return wsClient().subscribe({ query, variables }, {
    next: (msg) => (msg.errors ? error(new ApiError(msg.errors)) : next(msg.data)),
    error: (err) => error(err instanceof Error ? err : new Error(String(err?.reason || err))),
    complete: () => {},
  });
}

/** For tests and operators: drop the socket now (it reconnects by itself). */
export function dropConnection() {
  if (client) client.terminate();
}

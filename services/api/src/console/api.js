// Calls to the relay's public API, with the token kept in this tab; errors become sentences.

const TOKEN_KEY = 'mtls-relay.console.token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, value);
}

let unauthorized = () => {};
/** Called on every 401, before the caller sees the error (the console goes back to its sign-in form). */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

/** An answer of the API that is not a success, with the words to show for it. */
export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

// Said instead of (or before) the API's own words, for the statuses an operator meets.
const STATUS_WORDS = {
  401: 'The relay refused the token (expired, or not valid here): sign in again.',
  403: 'These credentials may not do this.',
  404: 'Not found.',
  409: 'Conflict.',
  413: 'Too large.',
  503: 'The relay cannot reach its store or queue right now: try again shortly.',
  504: 'The relay did not answer in time: try again.',
};

/** The API's explanation in words: Cloudflare's envelope (errors[].message) or problem+json (detail, title). */
function wordsOf(status, body) {
  if (body !== null && typeof body === 'object') {
    if (Array.isArray(body.errors) && body.errors.length > 0) {
      const parts = body.errors.map((e) => (typeof e.message === 'string' ? e.message : '')).filter((m) => m !== '');
      const codes = body.errors.map((e) => e.code).filter((c) => c !== undefined);
      if (parts.length > 0) return { message: parts.join('; '), code: codes.join(', ') };
    }
    if (typeof body.detail === 'string' || typeof body.title === 'string') {
      return { message: body.detail ?? body.title, code: body.code };
    }
  }
  return { message: STATUS_WORDS[status] ?? `The relay answered ${status}.`, code: undefined };
}

/**
 * `path` is relative (no leading slash), resolved against the page: `accounts/…` from `/console` is `/accounts/…`,
 * and behind a proxy that mounts the relay under a prefix, it stays under that prefix.
 */
export async function api(method, path, body) {
  const headers = { accept: 'application/json, application/problem+json' };
  const t = token();
  if (t !== null) headers.authorization = `Bearer ${t}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(new URL(path, document.baseURI), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
      redirect: 'error',
    });
  } catch {
    throw new ApiError(0, 'The relay could not be reached.', undefined);
  }
  const text = await res.text();
  let parsed = null;
  if (text !== '') {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (!res.ok) {
    const { message, code } = wordsOf(res.status, parsed);
    const text = res.status === 401 ? `${STATUS_WORDS[401]} (${message})` : res.status === 403 ? `Not allowed: ${message}` : message;
    const err = new ApiError(res.status, text, code);
    if (res.status === 401) unauthorized(err);
    throw err;
  }
  return parsed;
}

/** The words for any failure, for an alert element. */
export function describe(err) {
  if (err instanceof ApiError) return err.code === undefined || err.code === '' ? err.message : `${err.message} (${err.code})`;
  return `Unexpected: ${err instanceof Error ? err.message : String(err)}`;
}

// The error every client call throws: PROTOCOL.md's `error.code` / `message`.

export class ApiError extends Error {
  constructor(code, message, status = 0, body = null) {
    super(message || code);
    this.code = code;
    this.status = status;
    this.body = body;
  }

  /** 5xx or a lost connection: the outcome of the request is unknown. */
  get outcomeUnknown() {
    return this.status >= 500 || this.status === 0;
  }

  toString() {
    return this.message && this.message !== this.code ? `${this.code}: ${this.message}` : this.code;
  }
}

/** ApiError from a parsed error body (`{error: {code, message}}`) and HTTP status. */
export function errorFromBody(body, status) {
  const err = (body && (body.error || body)) || {};
  const code = typeof err.code === "string" ? err.code : status ? `HTTP_${status}` : "ERROR";
  const message = typeof err.message === "string" ? err.message : typeof err.detail === "string" ? err.detail : "";
  return new ApiError(code, message, status, body);
}

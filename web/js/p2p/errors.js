// Human text of an ApiError from a P2P call: what the code means, then the
// server's message, then the code itself ("Amount outside the offer limits (INVALID_PARAM)").

const MEANING = {
  INSUFFICIENT_FUNDS: "Not enough available balance",
  UNKNOWN_ORDER: "No such offer or trade (or not yours)",
  FORBIDDEN: "Not allowed",
  UNAUTHORIZED: "Log in first",
  RATE_LIMITED: "Too many requests — try again in a moment",
  NETWORK: "Network error — check your connection",
  TIMEOUT: "The server did not answer in time",
  DISCONNECTED: "Connection lost",
  INTERNAL: "Server error",
};

const sentence = (s) => (s ? s[0].toUpperCase() + s.slice(1) : s);

export function describeError(err) {
  if (!err) return "";
  const code = typeof err.code === "string" ? err.code : "";
  const message = typeof err.message === "string" && err.message !== code ? err.message.trim() : "";
  const meaning = MEANING[code];
  let text;
  if (meaning && message && !meaning.toLowerCase().includes(message.toLowerCase())) text = `${meaning}: ${message}`;
  else text = meaning || sentence(message) || (code ? "Request failed" : String(err));
  return code ? `${text} (${code})` : text;
}

// Claims of a JWT access token, read (never verified) on the client: `sub` (the
// user id) and `role` decide what the page offers; the server checks every call.

/** The payload of a JWT as an object, or null if it is not one. */
export function jwtClaims(token) {
  if (typeof token !== "string") return null;
  const parts = token.split(".");
  if (parts.length !== 3 || !parts[1]) return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" && !Array.isArray(claims) ? claims : null;
  } catch {
    return null;
  }
}

/** {id, role} of the token's user; null when there is no usable token. */
export function identityOf(token) {
  const c = jwtClaims(token);
  if (!c || c.sub === undefined || c.sub === null) return null;
  return { id: String(c.sub), role: c.role === "admin" ? "admin" : "user" };
}

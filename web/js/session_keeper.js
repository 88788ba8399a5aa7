// Keeps a login alive: refreshes the bearer token (POST /auth/refresh) before it
// expires, re-sends `auth` on the open WebSocket with the new token (the server
// closes a socket at its token's expiry otherwise), and ends the session when the
// token really expires.

const MIN_DELAY_MS = 30000;
const RETRY_MS = 30000;

/** When to refresh: at 80% of the remaining lifetime, not sooner than 30 s (unless about to expire). */
export function refreshDelay(msLeft) {
  if (!Number.isFinite(msLeft)) return null;
  if (msLeft <= 0) return 0;
  return Math.min(Math.max(MIN_DELAY_MS, msLeft * 0.8), Math.max(0, msLeft - 5000));
}

export function keepSessionAlive({ session, http, ws, onExpired }) {
  let refreshTimer = null;
  let expiryTimer = null;

  const clear = () => {
    clearTimeout(refreshTimer);
    clearTimeout(expiryTimer);
  };

  const arm = () => {
    clear();
    if (!session.loggedIn) return;
    const left = session.msUntilExpiry();
    if (!Number.isFinite(left)) return;
    expiryTimer = setTimeout(onExpired, Math.max(0, Math.min(left, 2 ** 31 - 1)));
    const delay = refreshDelay(left);
    if (delay !== null) refreshTimer = setTimeout(refresh, Math.min(delay, 2 ** 31 - 1));
  };

  async function refresh() {
    if (!session.loggedIn) return;
    try {
      const login = await http.request("POST", "/auth/refresh", { auth: true, body: {} });
      session.renew(login);
      if (ws.ready && ws.authed) ws.request("auth", { token: session.token }).catch(() => {});
      arm();
    } catch (e) {
      if (e.status === 401) return onExpired();
      // not offered by this server (404) or temporarily failing: retry while time is left
      if (e.status !== 404 && session.msUntilExpiry() > RETRY_MS) refreshTimer = setTimeout(refresh, RETRY_MS);
    }
  }

  session.onChange(arm);
  arm();
  return { arm, refresh };
}

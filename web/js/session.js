// The login session: bearer token and e-mail in sessionStorage (dies with the tab).

const KEY = "hftx.session";

export class Session {
  constructor(storage = globalThis.sessionStorage) {
    this.storage = storage;
    this.listeners = new Set();
    this.data = this.load();
  }

  load() {
    try {
      const d = JSON.parse(this.storage.getItem(KEY) || "null");
      if (d && d.token && (!d.expiresAt || d.expiresAt > Date.now())) return d;
    } catch {
      /* corrupt entry: start logged out */
    }
    return null;
  }

  get token() {
    return this.data ? this.data.token : null;
  }

  get email() {
    return this.data ? this.data.email : null;
  }

  get loggedIn() {
    return Boolean(this.data);
  }

  /** Store a login response ({access_token, expires_in}). */
  start(email, login) {
    const expiresAt = login.expires_in ? Date.now() + Number(login.expires_in) * 1000 : null;
    this.data = { token: login.access_token, email, expiresAt };
    this.storage.setItem(KEY, JSON.stringify(this.data));
    this.emit(null);
  }

  /** Replace the token after a refresh (same user, no login/logout event). */
  renew(login) {
    if (!this.data || !login || !login.access_token) return;
    const expiresAt = login.expires_in ? Date.now() + Number(login.expires_in) * 1000 : null;
    this.data = { ...this.data, token: login.access_token, expiresAt };
    this.storage.setItem(KEY, JSON.stringify(this.data));
  }

  /** Forget the token; `reason` (string) tells the UI why, e.g. "session expired". */
  end(reason = null) {
    if (!this.data) return;
    this.data = null;
    this.storage.removeItem(KEY);
    this.emit(reason);
  }

  msUntilExpiry() {
    return this.data && this.data.expiresAt ? this.data.expiresAt - Date.now() : Infinity;
  }

  onChange(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(reason) {
    for (const fn of this.listeners) fn(this.loggedIn, reason);
  }
}

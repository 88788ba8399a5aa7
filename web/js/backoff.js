// Reconnect delays: exponential with full jitter, capped. Pure.

export class Backoff {
  constructor({ base = 500, max = 30000, random = Math.random } = {}) {
    this.base = base;
    this.max = max;
    this.random = random;
    this.attempt = 0;
  }

  /** Delay in ms before the next attempt (grows with each call). */
  next() {
    const ceiling = Math.min(this.max, this.base * 2 ** this.attempt);
    this.attempt += 1;
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  reset() {
    this.attempt = 0;
  }
}

// Connection indicator in the header and the banner for `status`/`shutdown`.

import { CLOSE_REASONS } from "../ws.js";

export function mountConnection({ dot, label, banner }, ws) {
  let countdown = null;

  const setBanner = (text, kind = "warn") => {
    banner.textContent = text || "";
    banner.className = `banner banner-${kind}`;
    banner.hidden = !text;
  };

  ws.on("state", (state, detail) => {
    clearInterval(countdown);
    dot.className = `conn-dot conn-${state}`;
    if (state === "idle") {
      label.textContent = "Delayed (HTTP)";
      dot.title = "Public data is polled over HTTP; log in for the live WebSocket feed";
      setBanner("");
    } else if (state === "open") {
      label.textContent = "Connected";
      setBanner("");
    } else if (state === "connecting") {
      label.textContent = "Connecting…";
    } else {
      label.textContent = "Offline";
      const why = detail.reason || CLOSE_REASONS[detail.code] || "connection lost";
      if (detail.retryIn !== undefined) {
        let left = Math.ceil(detail.retryIn / 1000);
        const render = () => setBanner(`Disconnected (${why}). Reconnecting in ${left}s…`, detail.code === 1012 ? "info" : "warn");
        render();
        countdown = setInterval(() => {
          left = Math.max(0, left - 1);
          render();
        }, 1000);
      }
    }
  });

  ws.on("ready", () => {
    label.textContent = "Live";
  });

  ws.on("shutdown", () => {
    setBanner("The server node is restarting — reconnecting automatically…", "info");
  });
}

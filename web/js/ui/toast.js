// Transient notifications in the corner. kind: info | success | error | warn.

import { h } from "./dom.js";

const MAX_VISIBLE = 5;

export function createToaster(root) {
  return function toast(message, kind = "info", { title, timeout = 5000 } = {}) {
    const el = h(
      `div.toast.toast-${kind}`,
      { role: kind === "error" ? "alert" : "status" },
      title ? h("div.toast-title", title) : null,
      h("div.toast-body", String(message)),
    );
    const close = () => {
      el.classList.add("leaving");
      setTimeout(() => el.remove(), 200);
    };
    el.addEventListener("click", close);
    root.prepend(el);
    while (root.children.length > MAX_VISIBLE) root.lastElementChild.remove();
    if (timeout) setTimeout(close, timeout);
    return close;
  };
}

// A button that asks for a second click ("Confirm release?") before acting, for
// moves that cannot be undone. Disarms itself after a few seconds.

import { h } from "./dom.js";

const ARM_MS = 4000;

export function confirmButton(spec, { label, confirm, onConfirm, title }) {
  const b = h(spec, { type: "button", title }, label);
  let timer = null;
  const disarm = () => {
    clearTimeout(timer);
    delete b.dataset.armed;
    b.textContent = label;
  };
  b.addEventListener("click", () => {
    if (!b.dataset.armed) {
      b.dataset.armed = "1";
      b.textContent = confirm;
      timer = setTimeout(disarm, ARM_MS);
      return;
    }
    disarm();
    onConfirm();
  });
  return b;
}

// Top-level views: the spot trading page and P2P. The view is in the URL hash
// ("#p2p"; anything else is the spot view with a market id), so it survives reloads
// and links.

export const P2P_HASH = "#p2p";

export function viewOfHash(hash) {
  return hash === P2P_HASH ? "p2p" : "spot";
}

export function mountViews({ buttons, panes, body }, { onShow = () => {}, spotHash = () => "" }) {
  let current = null;
  const show = (name) => {
    if (name === current) return;
    current = name;
    body.classList.toggle("view-p2p", name === "p2p");
    buttons.forEach((b) => {
      b.classList.toggle("active", b.dataset.view === name);
      b.setAttribute("aria-selected", String(b.dataset.view === name));
    });
    for (const [view, el] of Object.entries(panes)) el.hidden = view !== name;
    onShow(name);
  };
  buttons.forEach((b) =>
    b.addEventListener("click", () => {
      const hash = b.dataset.view === "p2p" ? P2P_HASH : `#${spotHash()}`;
      if (location.hash !== hash) history.pushState(null, "", hash);
      show(b.dataset.view);
    }),
  );
  return {
    show,
    get current() {
      return current;
    },
  };
}

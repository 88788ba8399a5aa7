// Panel tabs (the bottom panel of the spot view, the P2P account panel). The first
// tab is shown first.

export function mountTabs(root, onShow = () => {}) {
  const buttons = root.querySelectorAll("[data-tab]");
  const panes = root.querySelectorAll("[data-pane]");
  const tools = root.querySelectorAll(".tab-tool");
  let current = buttons.length ? buttons[0].dataset.tab : "";
  const show = (name) => {
    current = name;
    buttons.forEach((b) => {
      b.classList.toggle("active", b.dataset.tab === name);
      b.setAttribute("aria-selected", String(b.dataset.tab === name));
    });
    panes.forEach((p) => (p.hidden = p.dataset.pane !== name));
    tools.forEach((t) => (t.hidden = t.dataset.for !== name));
    onShow(name);
  };
  buttons.forEach((b) => b.addEventListener("click", () => show(b.dataset.tab)));
  show(current);
  return { show, get current() { return current; } };
}

// Open orders table with per-order reduce (amend in place) and cancel, and cancel-all.

import { fmtPrice, fmtSize, timeOf } from "../format.js";
import { h, rafThrottle } from "./dom.js";

export function mountOpenOrders(root, { account, getMarket, getMarketById, cancelOrder, amendOrder, cancelAll, toast }) {
  const pane = root.querySelector('[data-pane="orders"]');
  const tbody = pane.querySelector("tbody");
  const empty = pane.querySelector(".empty");
  const count = root.querySelector('[data-count="orders"]');
  const onlyThis = root.querySelector('input[name="thisMarket"]');
  const cancelAllBtn = root.querySelector("#cancel-all");
  const canceling = new Set();

  async function cancel(order) {
    canceling.add(order.id);
    render();
    try {
      const res = await cancelOrder(order);
      if (res && res.id) account.upsertOrder(res);
    } catch (e) {
      toast(String(e), "error", { title: `Cancel ${order.id} failed` });
    } finally {
      canceling.delete(order.id);
      render();
    }
  }

  async function reduce(order) {
    const m = getMarketById(order.market);
    const amount = window.prompt(
      `New amount for ${order.side} ${order.market} ${order.id} (below ${fmtSize(m, order.amount)}, above ${fmtSize(m, order.filled)}); it keeps its place in the queue`,
      fmtSize(m, order.amount),
    );
    if (amount === null || amount.trim() === "") return;
    canceling.add(order.id);
    render();
    try {
      const res = await amendOrder(order, amount.trim());
      if (res && res.id) account.upsertOrder(res);
    } catch (e) {
      toast(String(e), "error", { title: `Reduce ${order.id} failed` });
    } finally {
      canceling.delete(order.id);
      render();
    }
  }

  const render = () => {
    const cur = getMarket();
    const list = account.openOrders(onlyThis.checked && cur ? cur.id : null);
    count.textContent = account.orders.size ? String(account.orders.size) : "";
    empty.hidden = list.length > 0;
    cancelAllBtn.disabled = list.length === 0;
    tbody.replaceChildren(
      ...list.map((o) => {
        const m = getMarketById(o.market);
        return h(
          "tr",
          h("td.mono", timeOf(o.created_ts)),
          h("td", o.market),
          h(`td.${o.side}`, o.side),
          h("td", o.type + (o.post_only ? " · post" : "")),
          h("td.num.mono", o.type === "market" ? "market" : fmtPrice(m, o.price)),
          h("td.num.mono", fmtSize(m, o.amount)),
          h("td.num.mono", fmtSize(m, o.filled)),
          h("td", o.time_in_force || ""),
          h("td", o.status),
          h(
            "td.actions",
            o.type === "limit"
              ? h(
                  "button.btn.btn-small.btn-ghost",
                  { type: "button", disabled: canceling.has(o.id), onclick: () => reduce(o), title: `Reduce order ${o.id} in place` },
                  "Reduce",
                )
              : "",
            h(
              "button.btn.btn-small.btn-ghost",
              { type: "button", disabled: canceling.has(o.id), onclick: () => cancel(o), title: `Cancel order ${o.id}` },
              canceling.has(o.id) ? "…" : "Cancel",
            ),
          ),
        );
      }),
    );
  };

  cancelAllBtn.addEventListener("click", async () => {
    const cur = getMarket();
    const market = onlyThis.checked && cur ? cur.id : null;
    cancelAllBtn.disabled = true;
    try {
      const res = await cancelAll(market);
      const n = res && (res.canceled ?? res.count ?? (Array.isArray(res) ? res.length : null));
      toast(n !== null && n !== undefined ? `${n} order(s) canceled` : "Cancel-all sent", "success");
      const list = Array.isArray(res) ? res : res && Array.isArray(res.orders) ? res.orders : [];
      for (const o of list) if (o && o.id) account.upsertOrder(o);
    } catch (e) {
      toast(String(e), "error", { title: "Cancel all failed" });
    } finally {
      render();
    }
  });
  onlyThis.addEventListener("change", render);
  const schedule = rafThrottle(render);
  account.on("orders", schedule);
  return { render: schedule };
}

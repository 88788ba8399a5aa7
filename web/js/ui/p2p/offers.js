// The P2P offer listing: filters (I want to buy/sell, asset, fiat), best price
// first as the server orders it, a Buy/Sell button per offer that opens the take
// dialog, and the "Post offer" button.

import { fiatAmount, fmtAsset, fmtFiat } from "../../p2p/money.js";
import { takeLimit } from "../../p2p/params.js";
import { takerSide } from "../../p2p/rules.js";
import { h, rafThrottle } from "../dom.js";
import { who } from "./bits.js";

const FIAT_RE = /^[A-Z]{3}$/;

export function mountOffers(root, { store, onTake, onPost }) {
  const tbody = root.querySelector("tbody");
  const empty = root.querySelector(".empty");
  const sideButtons = root.querySelectorAll("[data-filter-side]");
  const assetSel = root.querySelector('select[name="asset"]');
  const fiatInput = root.querySelector('input[name="fiat"]');
  let fiatTimer = null;

  const setSide = (side) => {
    sideButtons.forEach((b) => b.classList.toggle("active", b.dataset.filterSide === side));
    store.setFilters({ side });
  };
  sideButtons.forEach((b) => b.addEventListener("click", () => setSide(b.dataset.filterSide)));
  assetSel.addEventListener("change", () => store.setFilters({ asset: assetSel.value }));
  fiatInput.addEventListener("input", () => {
    clearTimeout(fiatTimer);
    const v = fiatInput.value.trim().toUpperCase();
    fiatInput.classList.toggle("invalid", v !== "" && !FIAT_RE.test(v));
    if (v !== "" && !FIAT_RE.test(v)) return;
    fiatTimer = setTimeout(() => store.setFilters({ fiat: v }), 250);
  });
  root.querySelector("[data-act=refresh]").addEventListener("click", () => store.loadOffers());
  root.querySelector("[data-act=post]").addEventListener("click", () => onPost());

  const renderAssets = () => {
    const cur = assetSel.value;
    assetSel.replaceChildren(
      h("option", { value: "" }, "All assets"),
      ...[...store.scales.keys()].sort().map((a) => h("option", { value: a }, a)),
    );
    assetSel.value = store.scales.has(cur) ? cur : "";
  };

  const limits = (o) => {
    const scale = store.scale(o.asset);
    const max = takeLimit(o);
    const lo = fiatAmount(o.price, o.min_amount, scale);
    const hi = fiatAmount(o.price, max, scale);
    return h(
      "td",
      h("div.mono", `${fmtAsset(o.min_amount)} – ${fmtAsset(max)} ${o.asset}`),
      lo && hi ? h("div.mono.muted", `${fmtFiat(lo)} – ${fmtFiat(hi)} ${o.fiat}`) : null,
    );
  };

  const render = () => {
    const me = store.me;
    const list = store.offers;
    empty.hidden = list.length > 0;
    empty.textContent = store.offersError ? `Could not load offers: ${store.offersError}` : "No offers match these filters";
    tbody.replaceChildren(
      ...list.map((o) => {
        const side = takerSide(o);
        const own = me && String(o.owner) === me.id;
        return h(
          "tr",
          { dataset: { offerId: o.id } },
          h("td", h("div", who(o.owner, me)), h(`div.${o.side === "sell" ? "sell" : "buy"}`, o.side === "sell" ? "sells" : "buys")),
          h("td.num.mono.strong", fmtFiat(o.price, o.fiat), h("div.muted", `per ${o.asset}`)),
          h("td.num.mono", fmtAsset(o.amount, o.asset)),
          limits(o),
          h("td.methods", (o.payment_methods || []).map((m) => h("span.chip", m))),
          h("td.mono", `${o.payment_window} min`),
          h(
            "td.actions",
            own
              ? h("span.muted", "your offer")
              : h(
                  `button.btn.btn-small.btn-${side}`,
                  { type: "button", onclick: () => onTake(o), dataset: { act: "take" } },
                  `${side === "buy" ? "Buy" : "Sell"} ${o.asset}`,
                ),
          ),
        );
      }),
    );
  };

  const schedule = rafThrottle(render);
  store.on("offers", schedule);
  store.on("assets", renderAssets);
  return { render: schedule };
}

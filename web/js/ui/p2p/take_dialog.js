// Take an offer: amount within its limits, the fiat to pay (or to receive) shown as
// it is typed, exact decimal strings sent at the offer's price.

import { cmpDec, isDecimal } from "../../decimal.js";
import { describeError } from "../../p2p/errors.js";
import { fmtAsset, fmtFiat } from "../../p2p/money.js";
import { buildTake, takeLimit } from "../../p2p/params.js";
import { takerSide } from "../../p2p/rules.js";
import { h, showError } from "../dom.js";
import { markInvalid, who } from "./bits.js";

export function mountTakeDialog(dialog, { store, account, toast, onTaken }) {
  const form = dialog.querySelector("form");
  const title = dialog.querySelector(".dialog-title");
  const terms = dialog.querySelector(".take-terms");
  const amount = form.elements.amount;
  const unit = dialog.querySelector(".take-unit");
  const owe = dialog.querySelector(".take-fiat");
  const note = dialog.querySelector(".take-note");
  const errBox = form.querySelector(".form-error");
  const submit = form.querySelector("button[type=submit]");
  let offer = null;

  dialog.querySelector(".dialog-close").addEventListener("click", () => dialog.close());

  const update = () => {
    if (!offer) return;
    const side = takerSide(offer);
    const r = buildTake(offer, amount.value, store.scale(offer.asset));
    const verb = side === "buy" ? "You pay" : "You receive";
    owe.replaceChildren(h("span.muted", `${verb} `), h("strong.mono", r.ok ? fmtFiat(r.fiat, offer.fiat) : `— ${offer.fiat}`));
    if (side === "sell") {
      const free = account.balance(offer.asset).free;
      const short = r.ok && isDecimal(free) && cmpDec(r.params.amount, free) > 0;
      note.textContent = `Your ${offer.asset} goes to escrow now (available ${fmtAsset(free, offer.asset)}); release it once the buyer's payment arrived.`;
      note.classList.toggle("warn", Boolean(short));
    } else {
      note.textContent = `Pay the seller within ${offer.payment_window} minutes using ${(offer.payment_methods || []).join(", ")}, then mark the trade paid.`;
      note.classList.remove("warn");
    }
  };

  amount.addEventListener("input", () => {
    markInvalid(form, null);
    showError(errBox, null);
    update();
  });
  dialog.querySelector("[data-act=max]").addEventListener("click", () => {
    let max = takeLimit(offer);
    const free = account.balance(offer.asset).free;
    if (takerSide(offer) === "sell" && isDecimal(free) && cmpDec(free, max) < 0 && cmpDec(free, offer.min_amount) >= 0) max = free;
    amount.value = fmtAsset(max).replace(/,/g, "");
    update();
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(errBox, null);
    const r = buildTake(offer, amount.value, store.scale(offer.asset));
    if (!r.ok) {
      markInvalid(form, r.field);
      return showError(errBox, r.error);
    }
    submit.disabled = true;
    try {
      const trade = await store.take(r.params);
      dialog.close();
      const side = takerSide(offer);
      toast(
        side === "buy"
          ? `Pay ${fmtFiat(trade.fiat_amount, trade.fiat)} within ${offer.payment_window} min, then mark it paid.`
          : `${fmtAsset(trade.amount, trade.asset)} escrowed; wait for ${fmtFiat(trade.fiat_amount, trade.fiat)}.`,
        "success",
        { title: `Trade ${trade.id} opened` },
      );
      onTaken(trade);
    } catch (err) {
      showError(errBox, describeError(err));
      if (err.code === "INVALID_PARAM" || err.code === "UNKNOWN_ORDER") store.loadOffers(); // terms may have moved
    } finally {
      submit.disabled = false;
    }
  });

  return {
    open(o) {
      offer = o;
      const side = takerSide(o);
      title.textContent = `${side === "buy" ? "Buy" : "Sell"} ${o.asset} ${side === "buy" ? "from" : "to"} ${who(o.owner, store.me)}`;
      const dl = [
        ["Price", `${fmtFiat(o.price, o.fiat)} per ${o.asset}`],
        ["Available", fmtAsset(o.amount, o.asset)],
        ["Limits per trade", `${fmtAsset(o.min_amount)} – ${fmtAsset(takeLimit(o))} ${o.asset}`],
        ["Payment methods", (o.payment_methods || []).join(", ")],
        ["Payment window", `${o.payment_window} minutes`],
      ];
      terms.replaceChildren(...dl.flatMap(([k, v]) => [h("dt", k), h("dd.mono", v)]));
      unit.textContent = o.asset;
      submit.textContent = `${side === "buy" ? "Buy" : "Sell"} ${o.asset}`;
      submit.className = `btn submit ${side}`;
      amount.value = "";
      markInvalid(form, null);
      showError(errBox, null);
      update();
      if (!dialog.open) dialog.showModal();
      amount.focus();
    },
  };
}

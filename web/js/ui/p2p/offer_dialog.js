// Post a P2P offer (a sell offer escrows its amount now) or edit one of mine
// (only the changed fields are sent; side, asset and fiat are fixed once posted).

import { cmpDec, isDecimal, subDec } from "../../decimal.js";
import { describeError } from "../../p2p/errors.js";
import { fiatAmount, fmtAsset, fmtFiat } from "../../p2p/money.js";
import { buildOffer, buildOfferEdit } from "../../p2p/params.js";
import { cleanInput } from "../../order.js";
import { h, showError } from "../dom.js";
import { markInvalid } from "./bits.js";

const FIELDS = ["price", "amount", "min_amount", "max_amount", "payment_methods", "payment_window"];

export function mountOfferDialog(dialog, { store, account, toast, onSaved }) {
  const form = dialog.querySelector("form");
  const el = form.elements;
  const title = dialog.querySelector(".dialog-title");
  const sideButtons = form.querySelectorAll("[data-side]");
  const summary = form.querySelector(".offer-summary");
  const errBox = form.querySelector(".form-error");
  const submit = form.querySelector("button[type=submit]");
  let side = "sell";
  let editing = null; // the offer being edited

  dialog.querySelector(".dialog-close").addEventListener("click", () => dialog.close());

  const values = () => ({
    side,
    asset: el.asset.value,
    fiat: el.fiat.value,
    ...Object.fromEntries(FIELDS.map((f) => [f, el[f].value])),
  });

  const units = () => {
    const asset = editing ? editing.asset : el.asset.value;
    const fiat = (editing ? editing.fiat : el.fiat.value.trim().toUpperCase()) || "fiat";
    form.querySelectorAll("[data-unit=asset]").forEach((s) => (s.textContent = asset));
    form.querySelectorAll("[data-unit=fiat]").forEach((s) => (s.textContent = fiat));
    return { asset, fiat };
  };

  const renderSummary = () => {
    const { asset, fiat } = units();
    const scale = store.scale(asset);
    const amount = cleanInput(el.amount.value);
    const price = cleanInput(el.price.value);
    const value = fiatAmount(price, amount, scale);
    const rows = [["Total value", value ? fmtFiat(value, fiat) : "—"]];
    const offerSide = editing ? editing.side : side;
    if (offerSide === "sell") {
      const free = account.balance(asset).free;
      let escrow = isDecimal(amount) ? amount : null;
      if (editing && escrow) escrow = subDec(amount, editing.amount);
      const label = editing ? "Escrow change" : "Escrowed now";
      const short = escrow && !escrow.startsWith("-") && isDecimal(free) && cmpDec(escrow, free) > 0;
      rows.push([label, escrow ? `${escrow.startsWith("-") ? "−" + fmtAsset(escrow.slice(1)) : fmtAsset(escrow)} ${asset}` : "—", short]);
      rows.push(["Available", fmtAsset(free, asset)]);
    } else {
      rows.push(["Escrow", "none — sellers escrow when they take"]);
    }
    summary.replaceChildren(...rows.flatMap(([k, v, bad]) => [h("dt", k), h(`dd.mono${bad ? ".sell" : ""}`, v)]));
  };

  const setSide = (s) => {
    side = s;
    sideButtons.forEach((b) => b.classList.toggle("active", b.dataset.side === s));
    submit.className = `btn submit ${s}`;
    if (!editing) submit.textContent = s === "sell" ? "Post sell offer" : "Post buy offer";
    renderSummary();
  };
  sideButtons.forEach((b) => b.addEventListener("click", () => !editing && setSide(b.dataset.side)));

  const renderAssets = () => {
    const cur = el.asset.value;
    el.asset.replaceChildren(...[...store.scales.keys()].sort().map((a) => h("option", { value: a }, a)));
    if (store.scales.has(cur)) el.asset.value = cur;
  };

  form.addEventListener("input", () => {
    markInvalid(form, null);
    showError(errBox, null);
    renderSummary();
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(errBox, null);
    const offer = editing;
    const r = offer
      ? buildOfferEdit(offer, values(), store.scale(offer.asset))
      : buildOffer(values(), store.scale(el.asset.value));
    if (!r.ok) {
      markInvalid(form, r.field);
      return showError(errBox, r.error);
    }
    if (offer && !r.changed) return dialog.close();
    submit.disabled = true;
    try {
      const saved = offer ? await store.updateOffer(offer.id, r.params) : await store.createOffer(r.params);
      dialog.close();
      toast(
        `${saved.side === "sell" ? "Selling" : "Buying"} ${fmtAsset(saved.amount, saved.asset)} at ${fmtFiat(saved.price, saved.fiat)}`,
        "success",
        { title: offer ? `Offer ${saved.id} updated` : `Offer ${saved.id} posted` },
      );
      onSaved(saved);
    } catch (err) {
      showError(errBox, describeError(err));
    } finally {
      submit.disabled = false;
    }
  });

  account.on("balances", () => dialog.open && renderSummary());
  store.on("assets", renderAssets);

  return {
    /** Open empty (new offer) or filled with `offer` (edit). */
    open(offer = null) {
      editing = offer;
      renderAssets();
      markInvalid(form, null);
      showError(errBox, null);
      form.classList.toggle("editing", Boolean(offer));
      form.querySelector(".amount-hint").textContent = offer
        ? "Left to trade (0 stops takes); a sell offer's escrow follows it"
        : "A sell offer escrows this amount now";
      el.asset.disabled = el.fiat.disabled = Boolean(offer);
      sideButtons.forEach((b) => (b.disabled = Boolean(offer) && b.dataset.side !== offer.side));
      if (offer) {
        title.textContent = `Edit offer ${offer.id}`;
        el.asset.value = offer.asset;
        el.fiat.value = offer.fiat;
        el.price.value = offer.price;
        el.amount.value = fmtAsset(offer.amount).replace(/,/g, "");
        el.min_amount.value = fmtAsset(offer.min_amount).replace(/,/g, "");
        el.max_amount.value = fmtAsset(offer.max_amount).replace(/,/g, "");
        el.payment_methods.value = (offer.payment_methods || []).join("\n");
        el.payment_window.value = String(offer.payment_window);
        setSide(offer.side);
        submit.textContent = "Save changes";
      } else {
        title.textContent = "Post a P2P offer";
        for (const f of ["price", "amount", "min_amount", "max_amount"]) el[f].value = "";
        if (!el.payment_window.value) el.payment_window.value = "15";
        setSide(side);
      }
      renderSummary();
      if (!dialog.open) dialog.showModal();
      el.price.focus();
    },
  };
}

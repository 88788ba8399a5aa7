// Wallet: deposit addresses and internal transfers. Each transfer form fill gets
// a transfer_id; it is kept across retries of a failed/unknown attempt (the server
// is idempotent by transfer_id) and renewed after a definite answer.

import { isDecimal, isZero, normalize } from "../decimal.js";
import { asList } from "../api.js";
import { cleanInput, numberError } from "../order.js";
import { h, showError } from "./dom.js";

export function newTransferId() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  return `t-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

export function mountWallet(root, { http, account, toast }) {
  const pane = root.querySelector('[data-pane="wallet"]');
  const tbody = pane.querySelector(".addresses tbody");
  const empty = pane.querySelector(".empty");
  const form = pane.querySelector(".transfer-form");
  const el = form.elements;
  const idHint = form.querySelector(".transfer-id");
  const errBox = form.querySelector(".form-error");
  const result = form.querySelector(".transfer-result");
  let transferId = newTransferId();
  let addresses = [];
  let loaded = false;

  const showId = () => (idHint.textContent = `transfer_id ${transferId}`);

  function renderAssets() {
    const assets = new Set([...addresses.map((a) => a.asset), ...account.balances.keys()]);
    const cur = el.asset.value;
    el.asset.replaceChildren(...[...assets].sort().map((a) => h("option", { value: a }, a)));
    if (cur && assets.has(cur)) el.asset.value = cur;
  }

  function renderAddresses() {
    empty.hidden = addresses.length > 0;
    tbody.replaceChildren(
      ...addresses.map((a) =>
        h(
          "tr",
          h("td.asset", a.asset),
          h("td.mono.address", a.address),
          h(
            "td.actions",
            h(
              "button.btn.btn-small.btn-ghost",
              {
                type: "button",
                onclick: async () => {
                  try {
                    await navigator.clipboard.writeText(a.address);
                    toast(`${a.asset} address copied`, "success", { timeout: 2000 });
                  } catch {
                    toast(a.address, "info", { title: "Copy this address" });
                  }
                },
              },
              "Copy",
            ),
          ),
        ),
      ),
    );
    renderAssets();
  }

  async function load() {
    try {
      addresses = asList(await http.addresses(), "addresses");
      loaded = true;
    } catch (e) {
      addresses = [];
      empty.textContent = `Could not load addresses: ${e}`;
    }
    renderAddresses();
  }

  form.addEventListener("input", () => {
    // a changed request is a new transfer
    if (!form.dataset.pending) {
      transferId = newTransferId();
      showId();
    }
  });

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(errBox, null);
    result.hidden = true; // the previous transfer's "Sent …" is not this one's answer
    const asset = el.asset.value;
    const amount = cleanInput(el.amount.value);
    const to = el.to_address.value.trim();
    if (!asset) return showError(errBox, "Choose an asset");
    if (!isDecimal(amount) || isZero(amount)) return showError(errBox, numberError(el.amount.value, `the ${asset} amount`));
    if (!to) return showError(errBox, "Enter the recipient's deposit address");
    const body = { transfer_id: transferId, asset, amount: normalize(amount), to_address: to };
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    form.dataset.pending = "1";
    try {
      const res = await http.transfer(body);
      result.textContent = `Sent ${body.amount} ${asset} → ${to}${res && res.status ? ` (${res.status})` : ""}`;
      result.className = "transfer-result ok";
      result.hidden = false;
      toast(`Transfer of ${body.amount} ${asset} sent`, "success");
      el.amount.value = "";
      transferId = newTransferId();
    } catch (err) {
      if (err.outcomeUnknown) {
        showError(errBox, `${err} — outcome unknown; submitting again reuses transfer_id ${transferId}, so it cannot be applied twice.`);
      } else {
        showError(errBox, err);
        transferId = newTransferId();
      }
    } finally {
      delete form.dataset.pending;
      submit.disabled = false;
      showId();
    }
  });

  account.on("balances", renderAssets);
  showId();

  return {
    load,
    clear() {
      addresses = [];
      loaded = false;
      renderAddresses();
      result.hidden = true;
    },
    get loaded() {
      return loaded;
    },
  };
}

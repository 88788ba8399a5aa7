// The P2P view: wires the store (js/p2p/store.js) to its panels and dialogs, keeps
// it live (notifications, reconnects, an HTTP poll while the WebSocket is down)
// and ticks the payment-deadline countdowns.

import { identityOf } from "../../jwt.js";
import { P2PClient } from "../../p2p/client.js";
import { describeError } from "../../p2p/errors.js";
import { isOverdue, needsMyAction, partyOf } from "../../p2p/rules.js";
import { P2PStore } from "../../p2p/store.js";
import { mountTabs } from "../tabs.js";
import { mountDisputes } from "./disputes.js";
import { mountInbox } from "./inbox.js";
import { mountMyOffers } from "./my_offers.js";
import { mountMyTrades } from "./my_trades.js";
import { mountOfferDialog } from "./offer_dialog.js";
import { mountOffers } from "./offers.js";
import { mountTakeDialog } from "./take_dialog.js";
import { mountTradeDetail } from "./trade_detail.js";

const POLL_MS = 15000; // while the WebSocket is down: no notifications arrive
const LISTING_MS = 30000;
const EXPIRY_GRACE_MS = 2000;

export function mountP2P({ main, offerDialog, takeDialog, viewCount }, { http, ws, session, account, toast, onLoginNeeded }) {
  const client = new P2PClient({ http, ws });
  const store = new P2PStore(client, { getIdentity: () => identityOf(session.token) });
  const accountRoot = main.querySelector("#p2p-account");
  const pane = (name) => accountRoot.querySelector(`[data-pane="${name}"]`);
  const countOf = (name) => accountRoot.querySelector(`[data-count="${name}"]`);
  let visible = false;

  const tradePanel = main.querySelector("#p2p-trade");
  const detail = mountTradeDetail(tradePanel, { store, toast });
  const tabs = mountTabs(accountRoot);
  const select = (id) => {
    detail.select(id);
    trades.render();
    disputes.render();
    // stacked (narrow) layout: the trade opens below the fold; bring it into view
    if (id && tradePanel.getBoundingClientRect().top >= window.innerHeight) tradePanel.scrollIntoView({ block: "start" });
  };
  const takeDlg = mountTakeDialog(takeDialog, {
    store,
    account,
    toast,
    onTaken: (t) => {
      tabs.show("trades");
      select(t.id);
    },
  });
  const offerDlg = mountOfferDialog(offerDialog, { store, account, toast, onSaved: () => tabs.show("offers") });
  const needLogin = (fn) => (...args) => (session.loggedIn ? fn(...args) : onLoginNeeded());
  mountOffers(main.querySelector("#p2p-offers"), {
    store,
    onTake: needLogin((o) => takeDlg.open(o)),
    onPost: needLogin(() => offerDlg.open()),
  });
  mountMyOffers(pane("offers"), { store, toast, onEdit: (o) => offerDlg.open(o), count: countOf("offers") });
  const trades = mountMyTrades(pane("trades"), { store, onSelect: select, getSelected: () => detail.selected, count: countOf("trades") });
  const disputes = mountDisputes(pane("disputes"), { store, onSelect: select, getSelected: () => detail.selected, count: countOf("disputes") });
  mountInbox(pane("inbox"), { store, onSelect: select });

  // the header's P2P button counts the trades waiting for the user's move
  const renderViewCount = () => {
    const me = store.me;
    const n = [...store.trades.values()].filter((t) => needsMyAction(t, partyOf(t, me))).length;
    viewCount.textContent = n ? String(n) : "";
    viewCount.title = n ? `${n} P2P trade(s) waiting for you` : "";
  };
  store.on("trades", renderViewCount);
  store.on("trade", renderViewCount);

  const reported = new Set();
  store.on("error", (what, e) => {
    const key = `${what.split(":")[0]}:${e.code}`;
    if (reported.has(key) || e.code === "UNAUTHORIZED") return;
    reported.add(key);
    setTimeout(() => reported.delete(key), 30000);
    toast(describeError(e), "error", { title: `P2P: could not load ${what.split(":")[0]}` });
  });

  function onSession(loggedIn) {
    const me = store.me;
    accountRoot.classList.toggle("signed-out", !loggedIn);
    accountRoot.querySelector(".signed-out-note").hidden = loggedIn;
    accountRoot.querySelector('[data-tab="disputes"]').hidden = !(me && me.role === "admin");
    if (!(me && me.role === "admin") && tabs.current === "disputes") tabs.show("trades");
    select(null);
    if (loggedIn) {
      if (!store.scales.size) store.loadAssets();
      store.loadAll();
    } else {
      store.clear();
      if (visible) store.loadOffers(); // "your offer" marks depend on who is logged in
    }
  }
  session.onChange(onSession);
  account.on("notification", (n) => store.onNotification(n));
  ws.on("ready", () => session.loggedIn && store.loadAll()); // pushes may have been missed

  // countdowns; an overdue PENDING trade is re-read until the server expires it
  const lastRead = new Map();
  setInterval(() => {
    if (visible) {
      trades.tick();
      detail.tick();
    }
    const now = Date.now();
    for (const t of store.trades.values()) {
      if (!isOverdue(t, now - EXPIRY_GRACE_MS)) continue;
      if (now - (lastRead.get(t.id) || 0) < 10000) continue;
      lastRead.set(t.id, now);
      store.refreshTrade(t.id);
    }
  }, 1000);
  let lastListing = 0;
  setInterval(() => {
    if (session.loggedIn && !ws.authed) {
      store.loadTrades();
      store.loadMine();
      store.loadDisputes();
    }
    if (visible && Date.now() - lastListing >= LISTING_MS) {
      lastListing = Date.now();
      store.loadOffers();
    }
  }, POLL_MS);

  let shownOnce = false;
  onSession(session.loggedIn);

  return {
    store,
    show() {
      visible = true;
      lastListing = Date.now();
      if (!shownOnce) store.loadAssets();
      shownOnce = true;
      store.loadOffers();
      if (session.loggedIn) store.loadTrades();
    },
    hide() {
      visible = false;
    },
  };
}

// hftx trading page: wires the pure modules (js/*.js) to the views (js/ui/*.js).

import { Account } from "./js/account.js";
import { Http } from "./js/api.js";
import { Backoff } from "./js/backoff.js";
import { endedOrderText } from "./js/order.js";
import { normalize } from "./js/decimal.js";
import { FillBatcher, fillsText } from "./js/fill_toasts.js";
import { MarketFeed } from "./js/market_feed.js";
import { Session } from "./js/session.js";
import { keepSessionAlive } from "./js/session_keeper.js";
import { WsClient } from "./js/ws.js";
import { mountAuth } from "./js/ui/auth.js";
import { mountBalances } from "./js/ui/balances.js";
import { mountChart } from "./js/ui/chart.js";
import { mountConnection } from "./js/ui/connection.js";
import { $ } from "./js/ui/dom.js";
import { mountFills } from "./js/ui/fills.js";
import { mountMarkets } from "./js/ui/markets.js";
import { mountOpenOrders } from "./js/ui/open_orders.js";
import { mountOrderBook } from "./js/ui/orderbook.js";
import { mountOrderForm } from "./js/ui/order_form.js";
import { mountTabs } from "./js/ui/tabs.js";
import { mountTicker } from "./js/ui/ticker.js";
import { createToaster } from "./js/ui/toast.js";
import { mountTrades } from "./js/ui/trades.js";
import { mountWallet } from "./js/ui/wallet.js";
import { mountP2P } from "./js/ui/p2p/index.js";
import { mountViews, P2P_HASH, viewOfHash } from "./js/ui/views.js";

const PRIVATE_SUBS = [{ channel: "orders" }, { channel: "balances" }, { channel: "notifications" }];
const EXPIRED = "Your session expired — please log in again.";

const session = new Session();
const http = new Http({ getToken: () => session.token, onUnauthorized: () => session.end(EXPIRED) });
const ws = new WsClient({ getToken: () => session.token });
const feed = new MarketFeed(ws, http);
const account = new Account();
const toast = createToaster($("#toasts"));

let markets = [];
let current = null;
const getMarket = () => current;
const getMarketById = (id) => markets.find((m) => m.id === id) || null;

// --- trading calls: WebSocket when authenticated, HTTP otherwise -------------
// MARKET_NOT_TRADING: the market was halted since the last markets poll; reload the
// list now so the badge and the disabled button show it, not in up to a minute
const placeOrder = (params) =>
  (ws.authed ? ws.request("order.place", params) : http.placeOrder(params)).catch((e) => {
    if (e.code === "MARKET_NOT_TRADING") loadMarkets();
    throw e;
  });
const cancelOrder = (o) => (ws.authed ? ws.request("order.cancel", { order_id: o.id }) : http.cancelOrder(o.id));
const amendOrder = (o, amount) =>
  ws.authed ? ws.request("order.amend", { order_id: o.id, amount }) : http.amendOrder(o.id, amount);
const cancelAll = (market) =>
  ws.authed ? ws.request("order.cancel_all", market ? { market } : {}) : http.cancelAll(market);

// --- views -------------------------------------------------------------------
mountConnection({ dot: $("#conn-dot"), label: $("#conn-label"), banner: $("#banner") }, ws);
const auth = mountAuth({ userArea: $("#user-area"), dialog: $("#auth-dialog") }, { http, session, toast });
const marketsUi = mountMarkets({ select: $("#market-select"), badge: $("#market-status") }, { onSelect: selectMarket });
const ticker = mountTicker($("#ticker"), feed, getMarket);
const chart = mountChart($("#chart"), { http, feed, ws, getMarket });
const orderForm = mountOrderForm($("#entry"), {
  getMarket,
  feed,
  account,
  session,
  placeOrder,
  onLoginNeeded: () => auth.open("login"),
});
const book = mountOrderBook($("#book"), feed, {
  getMarket,
  getOwnPrices: () => {
    const own = { buy: new Set(), sell: new Set() };
    if (current) for (const o of account.openOrders(current.id)) if (o.price) own[o.side]?.add(normalize(o.price));
    return own;
  },
  onPick: (price, ev) => orderForm.pickPrice(price, ev),
});
mountTrades($("#trades"), feed, getMarket);
const accountRoot = $("#account");
const wallet = mountWallet(accountRoot, { http, account, toast });
const openOrders = mountOpenOrders(accountRoot, {
  account,
  getMarket,
  getMarketById,
  cancelOrder,
  amendOrder,
  cancelAll,
  toast,
});
mountFills(accountRoot, { account, getMarketById });
mountBalances(accountRoot, { account });
mountTabs(accountRoot, (tab) => tab === "wallet" && session.loggedIn && !wallet.loaded && wallet.load());
const p2p = mountP2P(
  { main: $("#p2p"), offerDialog: $("#p2p-offer-dialog"), takeDialog: $("#p2p-take-dialog"), viewCount: $("#p2p-view-count") },
  { http, ws, session, account, toast, onLoginNeeded: () => auth.open("login") },
);
const views = mountViews(
  { buttons: document.querySelectorAll("[data-view]"), panes: { spot: $("#spot"), p2p: $("#p2p") }, body: document.body },
  {
    spotHash: () => (current ? current.id : ""),
    onShow: (view) => (view === "p2p" ? p2p.show() : p2p.hide()),
  },
);

// --- market selection ----------------------------------------------------------
function selectMarket(m) {
  if (!m) return;
  const changed = !current || current.id !== m.id;
  current = m;
  marketsUi.showStatus(m);
  if (!changed) return orderForm.refresh();
  try {
    localStorage.setItem("hftx.market", m.id);
  } catch {
    /* storage disabled */
  }
  if (views.current === "spot" && location.hash !== `#${m.id}`) history.replaceState(null, "", `#${m.id}`);
  ticker.reset();
  feed.setMarket(m);
  chart.setMarket(m);
  orderForm.setMarket(m);
  openOrders.render();
  book.render();
}

const marketsBackoff = new Backoff({ base: 1000, max: 15000 });
let marketsLoading = false;
let marketsRetry = null;
async function loadMarkets() {
  if (marketsLoading) return;
  marketsLoading = true;
  clearTimeout(marketsRetry);
  try {
    const list = await http.markets();
    marketsBackoff.reset();
    const hadMarkets = markets.length > 0;
    markets = list;
    if (!list.length) {
      if (hadMarkets || !loadMarkets.warned) toast("The exchange lists no market yet.", "warn");
      loadMarkets.warned = true;
      return;
    }
    const fromHash = location.hash === P2P_HASH ? "" : decodeURIComponent(location.hash.slice(1));
    const wanted = (current && current.id) || fromHash || localStorage.getItem("hftx.market");
    marketsUi.setMarkets(list, wanted);
    selectMarket(getMarketById(wanted) || list[0]);
    if (current) selectMarket(getMarketById(current.id)); // refresh status of the current market
  } catch (e) {
    const delay = marketsBackoff.next();
    if (!markets.length) toast(`Could not load markets (${e}); retrying in ${Math.ceil(delay / 1000)}s`, "error");
    marketsRetry = setTimeout(loadMarkets, delay);
  } finally {
    marketsLoading = false;
  }
}

function onHash() {
  views.show(viewOfHash(location.hash));
  if (views.current === "spot") selectMarket(getMarketById(decodeURIComponent(location.hash.slice(1))));
}
window.addEventListener("hashchange", onHash);
window.addEventListener("popstate", onHash);

// --- account / session ---------------------------------------------------------
let lastAccountError = "";
function loadAccount() {
  account.load(http).then(
    () => (lastAccountError = ""),
    (e) => {
      // one toast per distinct error, not one per reconnect
      if (e.code === "UNAUTHORIZED" || String(e) === lastAccountError) return;
      lastAccountError = String(e);
      toast(String(e), "error", { title: "Could not load account" });
    },
  );
}

function onSessionChange(loggedIn) {
  accountRoot.classList.toggle("signed-out", !loggedIn);
  accountRoot.querySelector(".signed-out-note").hidden = loggedIn;
  if (loggedIn) {
    ws.start(); // authenticates, then replays market + private subscriptions
    loadAccount();
    wallet.load();
  } else {
    ws.stop(); // public data falls back to HTTP polling
    account.clear();
    wallet.clear();
  }
  orderForm.refresh();
  book.render();
}
session.onChange(onSessionChange);
keepSessionAlive({ session, http, ws, onExpired: () => session.end(EXPIRED) });

ws.on("push", (m) => account.onPush(m));
ws.on("ready", () => {
  loadAccount(); // private pushes may have been missed while offline
  loadMarkets();
});
ws.on("auth_expired", () => session.end(EXPIRED));
const subErrors = new Set();
ws.on("sub_error", (params, e) => {
  const key = `${params.channel}:${e.code}`;
  if (subErrors.has(key)) return;
  subErrors.add(key);
  toast(`${params.channel}: ${e}`, "warn", { title: "Subscription refused" });
});
feed.on("resync", (reason) => console.info(`book resync: ${reason}`));
account.on("orders", book.render);
account.on("balances", () => orderForm.refresh());
account.on("notification", (n) => {
  const kind = String(n.kind || "");
  const title = kind.startsWith("p2p.") ? `P2P · ${kind.slice(4).replace(/_/g, " ")}` : kind || "Notification";
  toast(n.message || kind, "info", { title });
});
const fillToasts = new FillBatcher((fills) => {
  const f = fills[0];
  toast(fillsText(fills, getMarketById(f.market)), f.side === "sell" ? "sell" : "buy", { title: `Fill · ${f.market}` });
});
account.on("fill", (f) => fillToasts.add(f));
account.on("order_event", (exec, o) => {
  if (exec === "REJECTED" || (exec === "EXPIRED" && o.time_in_force !== "FOK")) {
    toast(endedOrderText(exec, o), "warn");
  }
});

// --- start ---------------------------------------------------------------------
views.show(viewOfHash(location.hash));
for (const s of PRIVATE_SUBS) ws.subscribe(s); // sent only once authenticated
loadMarkets();
setInterval(loadMarkets, 60000); // market status (TRADING / HALT / CANCEL_ONLY) changes
onSessionChange(session.loggedIn);

// The staff page: a token gate when the server asks for one, the live feed, and the views.
// A view is a <section data-view="name"> plus an entry in VIEWS; the nav shows the one in the
// URL's hash: #book, #calls, or #calls/<id> (the calls view with that call open).

import { setToken, token } from "./api.js";
import { BookView } from "./book-view.js";
import { CallsView } from "./calls-view.js";
import { LiveFeed } from "./feed.js";

const $ = (id) => document.getElementById(id);
const FEED_TEXT = {
  connecting: "Connecting…", reconnecting: "Reconnecting…", live: "Live", offline: "Offline — retrying",
};

// Counters for the browser tests (and anyone curious in the console).
const staffTest = { readies: 0, changes: 0, lastEventId: null, feedState: "connecting" };
window.staffTest = staffTest;

const feed = new LiveFeed();
const book = new BookView({ onAuthError: authProblem });
const calls = new CallsView({ onAuthError: authProblem });
const VIEWS = { book, calls };
let today = null;

function showView(hash) {
  const [name, arg] = hash.split("/");
  const wanted = VIEWS[name] ? name : "book";
  for (const section of document.querySelectorAll("[data-view]")) {
    section.hidden = section.dataset.view !== wanted;
  }
  for (const link of document.querySelectorAll("[data-view-link]")) {
    if (link.dataset.viewLink === wanted) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (wanted === "calls") {
    if (calls.date === null && today !== null) calls.show(today);
    if (arg && arg !== calls.openId) calls.open(decodeURIComponent(arg));
  }
}

function authProblem(error) {
  feed.stop();
  for (const section of document.querySelectorAll("[data-view]")) section.hidden = true;
  setFeedState("offline");
  if (error.status === 403) {
    $("closed-text").textContent = error.message;
    $("closed").hidden = false;
    return;
  }
  $("gate").hidden = false;
  const error401 = $("gate-error");
  error401.hidden = !token();
  error401.textContent = token() ? "That token was not accepted." : "";
  setToken(null);
  $("token-input").focus();
}

function setFeedState(state) {
  staffTest.feedState = state;
  $("feed-state").dataset.state = state;
  $("feed-text").textContent = FEED_TEXT[state] ?? state;
}

feed.addEventListener("state", ({ detail }) => setFeedState(detail.state));
feed.addEventListener("auth", ({ detail }) => {
  authProblem({ status: detail.status, message: detail.status === 403
    ? "This server answers the staff book only on its own machine. Set STAFF_TOKEN on the server to open it to others."
    : "" });
});
feed.addEventListener("ready", ({ detail }) => {
  staffTest.readies += 1;
  staffTest.lastEventId = feed.lastEventId;
  if (today === null) {
    today = detail.today;
    book.show($("book-date").value || today);
    if (calls.date === null && !$("view-calls").hidden) calls.show(today);
  }
});
feed.addEventListener("change", ({ detail }) => {
  staffTest.changes += 1;
  staffTest.lastEventId = feed.lastEventId;
  book.apply(detail);
});

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setToken($("token-input").value.trim());
  today = null;
  $("token-input").value = "";
  $("gate").hidden = true;
  showView(location.hash.slice(1));
  feed.start();
});

window.addEventListener("hashchange", () => showView(location.hash.slice(1)));
showView(location.hash.slice(1));
feed.start();

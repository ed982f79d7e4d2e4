// The staff page: a token gate when the server asks for one, the live feed, and the views.
// A view is a <section data-view="name"> plus an entry in VIEWS; the nav shows the one in the
// URL's hash: #book, #requests, #week, #settings, #calls, or #calls/<id> (that call open).

import { AddBooking } from "./add-booking.js";
import { budget, setToken, token } from "./api.js";
import { BookView } from "./book-view.js";
import { CallsView } from "./calls-view.js";
import { restaurantNow, setZone, timeZone } from "./clock.js";
import { DetailsDialog } from "./details.js";
import { LiveFeed } from "./feed.js";
import { RequestsView } from "./requests-view.js";
import { SettingsView } from "./settings-view.js";
import { WeekView } from "./week-view.js";

const $ = (id) => document.getElementById(id);
const FEED_TEXT = {
  connecting: "Connecting…", reconnecting: "Reconnecting…", live: "Live", offline: "Offline — retrying",
};

// Counters for the browser tests (and anyone curious in the console).
const staffTest = { readies: 0, changes: 0, lastEventId: null, feedState: "connecting" };
window.staffTest = staffTest;

const feed = new LiveFeed();
const details = new DetailsDialog();
const book = new BookView({ onAuthError: authProblem, details });
const calls = new CallsView({ onAuthError: authProblem });
const requests = new RequestsView({ onAuthError: authProblem, details });
let profile = null;
const week = new WeekView({ onAuthError: authProblem, profile: () => profile, today: () => today });
const settings = new SettingsView({
  onAuthError: authProblem,
  onProfile: (value) => {
    profile = value;
    if (value?.timezone) setZone(value.timezone);
    staffTest.profile = value;
  },
});
const adder = new AddBooking({
  onAuthError: authProblem,
  profile: () => profile,
  onBooked: (made) => book.apply({ before: null, after: made }),
});
const VIEWS = { book, calls, requests, week, settings };
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
  if (wanted === "week" && today !== null) week.load();
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
/** The daily budget banner: shown once today's estimated cost reaches the cap. */
async function showBudget() {
  try {
    const state = await budget();
    const banner = $("budget");
    banner.hidden = !state.exhausted;
    if (state.exhausted) {
      banner.textContent = `The host is not taking calls for the rest of today: the daily budget `
        + `of $${state.budget_usd.toFixed(2)} is spent ($${state.spent_usd.toFixed(2)} so far).`;
    }
    staffTest.budget = state;
  } catch {
    // not allowed yet (the token gate) or the server is restarting: the next check tells
  }
}

feed.addEventListener("ready", ({ detail }) => {
  staffTest.readies += 1;
  showBudget();
  staffTest.lastEventId = feed.lastEventId;
  if (today === null) {
    // "Today" is the restaurant's: its profile's timezone (else the server's), not the device's.
    today = detail.today;
    setZone(detail.timezone);
    settings.load().then(() => {
      if (timeZone()) today = restaurantNow().date;
      book.show($("book-date").value || today);
      if (calls.date === null && !$("view-calls").hidden) calls.show(today);
      if (!$("view-week").hidden) week.load();
      staffTest.profileLoaded = true;
    });
  } else {
    today = timeZone() ? restaurantNow().date : detail.today; // back after midnight, perhaps
  }
  requests.load(); // after a reconnect too: nothing answered meanwhile is missed
});
feed.addEventListener("change", ({ detail }) => {
  staffTest.changes += 1;
  staffTest.lastEventId = feed.lastEventId;
  book.apply(detail);
  requests.apply(detail);
  details.apply(detail);
  week.changed();
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
staffTest.restaurantNow = restaurantNow;
showView(location.hash.slice(1));
feed.start();
setInterval(showBudget, 60_000);

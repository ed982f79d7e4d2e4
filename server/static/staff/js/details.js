// A booking's details: its facts, notes, history (who changed what, with the call that did it,
// linked) and the messages sent to the guest (when this server sends any). Kept current by the
// live feed while open. Also the "someone else changed this booking" dialog (a 412).

import { formatDate, formatParty, formatTime } from "/js/format.js";
import { bookingHistory, guestMessages } from "./api.js";
import { formatInstant } from "./clock.js";

const $ = (id) => document.getElementById(id);
const ACTIONS = {
  created: "Booked", changed: "Changed", cancelled: "Cancelled",
  replaced: "Rebooked (replacing a past booking)", requested: "Requested (large party)",
  confirmed: "Confirmed", declined: "Declined",
};
const SOURCES = { rest: "REST API", voice: "phone call", staff: "staff page" };

export class DetailsDialog {
  constructor() {
    this.item = null;
    $("history-dialog").addEventListener("close", () => { this.item = null; });
  }

  async open(item) {
    this.item = item;
    this.#facts(item);
    $("history-list").replaceChildren();
    $("messages-list").replaceChildren();
    $("messages-empty").hidden = true;
    $("history-dialog").showModal();
    await Promise.all([this.#loadHistory(item), this.#loadMessages(item)]);
  }

  /** A feed change: refresh when it is about the booking on show. */
  apply(change) {
    const state = change.after ?? change.before;
    if (!this.item || state?.phone_number !== this.item.phone_number) return;
    if (change.after) {
      this.item = change.after;
      this.#facts(change.after);
    }
    this.#loadHistory(this.item);
  }

  #facts(item) {
    $("history-title").textContent = `${item.name} · ${item.confirmation_number}`;
    fillFacts($("details-facts"), item);
    $("details-notes").textContent = item.other_info?.notes || "No notes.";
  }

  async #loadHistory(item) {
    try {
      const { items } = await bookingHistory(item.phone_number);
      if (item.phone_number !== this.item?.phone_number) return;
      $("history-list").replaceChildren(...items.map(historyItem));
    } catch (error) {
      $("history-list").replaceChildren(errorItem(error));
    }
  }

  async #loadMessages(item) {
    try {
      const answer = await guestMessages(item.phone_number, item.reservation_date);
      if (item.phone_number !== this.item?.phone_number) return;
      const messages = answer?.items ?? answer?.messages ?? (Array.isArray(answer) ? answer : []);
      $("messages-list").replaceChildren(...messages.map(messageItem));
      $("messages-empty").hidden = messages.length > 0;
    } catch (error) {
      $("messages-list").replaceChildren(errorItem(error));
    }
  }
}

/** The 412 answer: the booking as it is now; nothing the host typed was saved. */
export function showStale(current) {
  fillFacts($("stale-facts"), current);
  $("stale-dialog").showModal();
}

export function fillFacts(list, item) {
  const facts = [
    ["Name", item.name],
    ["When", `${formatDate(item.reservation_date)}, ${formatTime(item.reservation_time)}`],
    ["Party", formatParty(item.party_size)],
    ["Phone", item.phone_number],
    ["Status", item.status],
    ["Confirmation", item.confirmation_number],
  ];
  if (item.tables?.length) facts.push(["Tables", item.tables.join(" + ")]);
  if (item.other_info?.notes) facts.push(["Notes", item.other_info.notes]);
  list.replaceChildren(...facts.flatMap(([term, value]) => {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = String(value ?? "");
    dd.dataset.fact = term.toLowerCase();
    return [dt, dd];
  }));
}

function errorItem(error) {
  const li = document.createElement("li");
  li.className = "error";
  li.textContent = error.message;
  return li;
}

function messageItem(message) {
  const li = document.createElement("li");
  li.dataset.status = message.status ?? "";
  const title = document.createElement("strong");
  title.textContent = `${message.kind ?? "message"} · ${message.status ?? ""}`;
  const when = document.createElement("div");
  when.className = "when";
  const times = [["created_at", "queued"], ["due_at", "due"], ["sent_at", "sent"]]
    .filter(([key]) => message[key])
    .map(([key, label]) => `${label} ${formatInstant(message[key])}`);
  if (message.attempts > 1) times.push(`${message.attempts} attempts`);
  when.textContent = times.join(" · ");
  li.append(title, when);
  if (message.body) {
    const body = document.createElement("div");
    body.textContent = message.body;
    li.append(body);
  }
  if (message.error) {
    const error = document.createElement("div");
    error.className = "error";
    error.textContent = message.error;
    li.append(error);
  }
  return li;
}

function historyItem(entry) {
  const li = document.createElement("li");
  li.dataset.action = entry.action;
  const title = document.createElement("strong");
  title.textContent = ACTIONS[entry.action] ?? entry.action;
  const when = document.createElement("div");
  when.className = "when";
  const by = SOURCES[entry.source] ?? entry.source;
  when.textContent = `${formatInstant(entry.at)} · by ${by}`;
  if (entry.override || entry.after?.other_info?.override) when.append(" · booked past the rules");
  if (entry.call) {
    // The call's record: its transcript, in the calls view (the details dialog closes).
    const link = document.createElement("a");
    link.href = `#calls/${encodeURIComponent(entry.call)}`;
    link.dataset.call = entry.call;
    link.textContent = "the call";
    link.addEventListener("click", () => $("history-dialog").close());
    when.append(" · ", link);
  }
  const what = document.createElement("div");
  what.textContent = summary(entry);
  li.append(title, when, what);
  return li;
}

export function describeChanges(item, changes) {
  const lines = [];
  if ("name" in changes) lines.push(`Name: ${item.name} → ${changes.name}`);
  if ("reservation_date" in changes) {
    lines.push(`Date: ${formatDate(item.reservation_date)} → ${formatDate(changes.reservation_date)}`);
  }
  if ("reservation_time" in changes) {
    lines.push(`Time: ${formatTime(item.reservation_time)} → ${formatTime(changes.reservation_time)}`);
  }
  if ("party_size" in changes) {
    lines.push(`Party: ${formatParty(item.party_size)} → ${formatParty(changes.party_size)}`);
  }
  if ("other_info" in changes) {
    lines.push(`Notes: “${item.other_info?.notes ?? ""}” → “${changes.other_info.notes ?? ""}”`);
  }
  if ("status" in changes) lines.push(`Status: ${item.status} → ${changes.status}`);
  return lines;
}

function summary(entry) {
  const state = entry.after ?? entry.before;
  const text = (r) => `${r.name}, ${formatParty(r.party_size)}, ${formatDate(r.reservation_date)} `
    + `${formatTime(r.reservation_time)} (${r.confirmation_number})`;
  if (entry.action === "changed" && entry.before) {
    const lines = describeChanges(entry.before, diff(entry.before, entry.after));
    return lines.join("; ") || text(state);
  }
  return text(state);
}

function diff(before, after) {
  const changes = {};
  for (const key of ["name", "reservation_date", "reservation_time", "party_size", "status"]) {
    if (before[key] !== after[key]) changes[key] = after[key];
  }
  if (JSON.stringify(before.other_info) !== JSON.stringify(after.other_info)) {
    changes.other_info = after.other_info;
  }
  return changes;
}

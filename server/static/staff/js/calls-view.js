// The calls: one day's calls with outcome, duration and cost; a call opens to its transcript
// with tool calls. Read from the call records (GET /api/calls); "Refresh" reads them again.
// A call opens from the URL (#calls/<id>), so the book's history can link to the call that
// made a booking.

import { formatDate } from "/js/format.js";
import { StaffAuthError, getCall, listCalls } from "./api.js";

const $ = (id) => document.getElementById(id);
const OUTCOMES = {
  booked: "booked", changed: "changed", cancelled: "cancelled", looked_up: "looked up",
  none: "no booking", failed: "failed",
};
const ROLES = { caller: "Caller", host: "Host", tool: "Tool", note: "" };

export function money(usd) {
  return `$${Number(usd ?? 0).toFixed(usd && usd < 0.01 ? 4 : 2)}`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "live";
  const s = Math.round(seconds);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
}

const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

export class CallsView {
  constructor({ onAuthError }) {
    this.onAuthError = onAuthError;
    this.date = null;
    this.openId = null;
    $("calls-date").addEventListener("change", (event) => this.show(event.target.value));
    $("calls-refresh").addEventListener("click", () => this.show(this.date));
    $("call-dialog").addEventListener("close", () => {
      this.openId = null;
      if (location.hash.startsWith("#calls/")) history.replaceState(null, "", "#calls");
    });
  }

  /** Show a day's calls. */
  async show(date) {
    if (!date) return;
    this.date = date;
    $("calls-date").value = date;
    try {
      const items = await listCalls(date);
      if (date !== this.date) return; // another day was picked meanwhile
      this.#render(items);
      $("calls-error").hidden = true;
    } catch (error) {
      this.#problem(error, $("calls-error"));
    }
  }

  #render(items) {
    const template = $("call-row-template");
    $("calls-rows").replaceChildren(...items.map((item) => {
      const row = template.content.firstElementChild.cloneNode(true);
      const cell = (name) => row.querySelector(`[data-col="${name}"]`);
      row.dataset.id = item.id;
      row.dataset.outcome = item.outcome;
      cell("started").textContent = clock(item.started_at);
      cell("channel").textContent = item.channel;
      cell("caller").textContent = item.caller ?? "";
      cell("duration").textContent = item.status === "interrupted" ? "interrupted" : duration(item.duration_s);
      const outcome = row.querySelector(".status");
      outcome.textContent = OUTCOMES[item.outcome] ?? item.outcome;
      outcome.dataset.outcome = item.outcome;
      cell("code").textContent = item.confirmation_number ?? "";
      cell("cost").textContent = money(item.cost_usd);
      row.querySelector('[data-action="open"]').href = `#calls/${item.id}`;
      return row;
    }));
    $("calls-count").textContent = String(items.length);
    $("calls-booked").textContent = String(items.filter((i) => i.outcome === "booked").length);
    $("calls-cost").textContent = money(items.reduce((sum, i) => sum + i.cost_usd, 0));
    $("calls-empty").hidden = items.length > 0;
  }

  /** Open one call: its facts, then its transcript with tool calls. */
  async open(id) {
    this.openId = id;
    $("call-facts").replaceChildren();
    $("call-transcript").replaceChildren();
    $("call-error").hidden = true;
    $("call-title").textContent = "Call";
    if (!$("call-dialog").open) $("call-dialog").showModal();
    try {
      const call = await getCall(id);
      if (id !== this.openId) return;
      this.#fill(call);
      if (this.date === null) this.show(call.started_at.slice(0, 10));
    } catch (error) {
      this.#problem(error, $("call-error"));
    }
  }

  #fill(call) {
    $("call-title").textContent = `Call of ${formatDate(call.started_at.slice(0, 10))} at ${clock(call.started_at)}`;
    const latency = call.reply_latency_ms;
    const facts = [
      ["Channel", call.channel],
      ["Caller", call.caller ?? "unknown"],
      ["Duration", call.status === "interrupted" ? "interrupted" : duration(call.duration_s)],
      ["Ended", call.end_reason ?? "still live"],
      ["Outcome", OUTCOMES[call.outcome] ?? call.outcome],
      ["Confirmation", call.confirmation_number ?? "—"],
      ["Reply latency", latency.count ? `p50 ${latency.p50} ms · max ${latency.max} ms (${latency.count})` : "—"],
      ["Estimated cost", money(call.cost_usd)],
    ];
    $("call-facts").replaceChildren(...facts.flatMap(([name, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = value;
      dd.dataset.fact = name.toLowerCase().replace(" ", "-");
      return [dt, dd];
    }));
    const entries = call.transcript ?? [];
    if (!entries.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = call.transcript_purged_at
        ? "The transcript was removed (TRANSCRIPT_RETENTION_DAYS)."
        : "No transcript was kept.";
      $("call-transcript").replaceChildren(li);
      return;
    }
    $("call-transcript").replaceChildren(...entries.map(transcriptItem));
  }

  #problem(error, element) {
    if (error instanceof StaffAuthError) {
      this.onAuthError(error);
      return;
    }
    element.textContent = error.message;
    element.hidden = false;
  }
}

function transcriptItem(entry) {
  const li = document.createElement("li");
  li.dataset.role = entry.role;
  if (entry.at_s !== undefined) {
    const at = document.createElement("span");
    at.className = "at";
    at.textContent = `${entry.at_s.toFixed(1)} s`;
    li.append(at);
  }
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = entry.role === "tool" ? `${entry.name} (${entry.ok ? "ok" : "failed"}, ${entry.ms} ms)` : ROLES[entry.role] ?? entry.role;
  li.append(who);
  if (entry.role === "tool") {
    const args = document.createElement("pre");
    args.textContent = `→ ${entry.arguments}`;
    const output = document.createElement("pre");
    output.textContent = `← ${entry.output}`;
    li.append(args, output);
  } else {
    li.append(document.createTextNode(entry.text));
  }
  return li;
}

// The week ahead: the next 7 days with covers per day and per service (a service is one of the
// day's opening windows), and for the chosen day the covers per arrival slot against
// covers_per_slot and, with a table plan, tables × time: who sits where, and the free gaps.

import { formatDate, formatParty, formatTime } from "/js/format.js";
import { StaffAuthError, listRange } from "./api.js";
import { addDays, hhmm, minutes, weekdayOf } from "./clock.js";

const $ = (id) => document.getElementById(id);
const DAYS = 7;

export class WeekView {
  constructor({ onAuthError, profile, today }) {
    this.onAuthError = onAuthError;
    this.profile = profile; // () => profile or null
    this.today = today; // () => ISO date
    this.items = [];
    this.chosen = null;
    this.timer = null;
    $("week-days").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-date]");
      if (button) this.#choose(button.dataset.date);
    });
  }

  async load() {
    const first = this.today();
    if (!first) return;
    const last = addDays(first, DAYS - 1);
    try {
      this.items = (await listRange(last)).filter((item) => item.status === "confirmed");
      $("week-range").textContent = `${formatDate(first)} – ${formatDate(last)}`;
      this.#renderDays(first);
      this.#choose(this.chosen && this.chosen >= first && this.chosen <= last ? this.chosen : first);
      $("week-error").hidden = true;
    } catch (error) {
      if (error instanceof StaffAuthError) return this.onAuthError(error);
      $("week-error").textContent = error.message;
      $("week-error").hidden = false;
    }
  }

  /** A feed change: read the week again, once for a burst of changes. */
  changed() {
    if ($("view-week").hidden) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load(), 150);
  }

  #renderDays(first) {
    const profile = this.profile();
    $("week-days").replaceChildren(...Array.from({ length: DAYS }, (_, n) => {
      const date = addDays(first, n);
      const day = this.items.filter((item) => item.reservation_date === date);
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "day-card";
      button.dataset.date = date;
      const covers = sum(day);
      const title = document.createElement("strong");
      title.textContent = formatDate(date);
      const total = document.createElement("span");
      total.className = "day-covers";
      total.textContent = `${covers} covers · ${day.length} bookings`;
      const services = document.createElement("span");
      services.className = "muted";
      services.textContent = servicesOf(profile, date, day)
        .map((service) => `${service.label}: ${service.covers}`).join(" · ");
      button.append(title, total, services);
      button.setAttribute("aria-label", `${formatDate(date)}: ${covers} covers, ${day.length} bookings`);
      li.append(button);
      return li;
    }));
  }

  #choose(date) {
    this.chosen = date;
    for (const button of $("week-days").querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(button.dataset.date === date));
    }
    const profile = this.profile();
    const day = this.items.filter((item) => item.reservation_date === date);
    $("day-detail-heading").textContent = formatDate(date);
    const windows = profile?.availability === "rules" || profile?.hours ? windowsOf(profile, date) : [];
    $("day-detail-note").textContent = windows.length
      ? `Open for arrivals ${windows.map(([a, b]) => `${formatTime(a)}–${formatTime(b)}`).join(", ")}.`
      : (profile?.hours ? "Closed for arrivals on this day." : "");
    this.#renderSlots(profile, windows, day);
    this.#renderTimeline(profile, windows, day);
  }

  #renderSlots(profile, windows, day) {
    const step = profile?.slot_minutes || 15;
    const limit = profile?.covers_per_slot ?? null;
    const byTime = new Map();
    for (const item of day) {
      const slot = hhmm(Math.floor(minutes(item.reservation_time) / step) * step);
      byTime.set(slot, (byTime.get(slot) ?? 0) + item.party_size);
    }
    const slots = new Set(byTime.keys());
    for (const [from, to] of windows) {
      for (let at = minutes(from); at <= minutes(to); at += step) slots.add(hhmm(at));
    }
    $("slot-rows").replaceChildren(...[...slots].sort().map((slot) => {
      const row = document.createElement("tr");
      const covers = byTime.get(slot) ?? 0;
      const time = document.createElement("th");
      time.scope = "row";
      time.textContent = formatTime(slot);
      const count = document.createElement("td");
      count.textContent = limit ? `${covers} / ${limit}` : String(covers);
      const load = document.createElement("td");
      const meter = document.createElement("meter");
      meter.min = 0;
      meter.max = limit || Math.max(covers, 1);
      meter.value = covers;
      if (limit) meter.high = Math.ceil(limit * 0.8);
      meter.setAttribute("aria-label", `${formatTime(slot)}: ${covers} covers`);
      load.append(meter);
      row.classList.toggle("is-full", Boolean(limit) && covers >= limit);
      row.dataset.slot = slot;
      row.append(time, count, load);
      return row;
    }));
  }

  /** Tables × time: one row per table, its bookings where they sit and the gaps between. */
  #renderTimeline(profile, windows, day) {
    const tables = profile?.tables ?? [];
    $("timeline").hidden = tables.length === 0;
    if (!tables.length) return;
    const step = profile.slot_minutes || 15;
    const held = day.filter((item) => item.tables?.length).map((item) => ({
      item, from: minutes(item.reservation_time),
      to: minutes(item.reservation_time) + dining(profile, item.party_size),
    }));
    const starts = [...windows.map(([a]) => minutes(a)), ...held.map((h) => h.from)];
    const ends = [...windows.map(([a, b]) => minutes(b) + dining(profile, 2)), ...held.map((h) => h.to)];
    if (!starts.length) {
      $("timeline-grid").replaceChildren(text("p", "muted", "Nothing to seat on this day."));
      return;
    }
    const begin = Math.floor(Math.min(...starts) / step) * step;
    const end = Math.ceil(Math.max(...ends) / step) * step;
    const column = (at) => 2 + Math.round((at - begin) / step);
    const grid = $("timeline-grid");
    grid.style.gridTemplateColumns = `4rem repeat(${(end - begin) / step}, minmax(1.5rem, 1fr))`;
    const cells = [];
    for (const [index, table] of tables.entries()) {
      const row = index + 1;
      const name = text("div", "tl-table", `${table.name} (${table.seats})`);
      name.setAttribute("role", "rowheader");
      name.style.gridRow = String(row);
      cells.push(name);
      const mine = held.filter((h) => h.item.tables.includes(table.name)).sort((a, b) => a.from - b.from);
      let free = begin;
      for (const seat of [...mine, { from: end, to: end }]) {
        if (seat.from > free) cells.push(span(row, column(free), column(seat.from), "tl-free",
          `free ${formatTime(hhmm(free))}–${formatTime(hhmm(seat.from))}`));
        if (seat.item) {
          cells.push(span(row, column(seat.from), column(seat.to), "tl-seat",
            `${seat.item.name}, ${formatParty(seat.item.party_size)}, `
            + `${formatTime(hhmm(seat.from))}–${formatTime(hhmm(seat.to))}`));
        }
        free = Math.max(free, seat.to);
      }
    }
    grid.replaceChildren(...cells);
  }
}

const sum = (items) => items.reduce((total, item) => total + item.party_size, 0);

function text(tag, className, content) {
  const element = document.createElement(tag);
  element.className = className;
  element.textContent = content;
  return element;
}

function span(row, from, to, className, label) {
  const cell = text("div", className, label);
  cell.setAttribute("role", "cell");
  cell.style.gridRow = String(row);
  cell.style.gridColumn = `${from} / ${Math.max(to, from + 1)}`;
  return cell;
}

/** The opening windows (arrivals) of a date: [] when closed that weekday or for a closure. */
export function windowsOf(profile, date) {
  if (!profile?.hours) return [];
  const closed = (profile.closures ?? []).some((c) => c.from <= date && date <= c.to);
  return closed ? [] : profile.hours[weekdayOf(date)] ?? [];
}

/** Covers per service of a day; bookings outside every window are "other". */
function servicesOf(profile, date, day) {
  const windows = windowsOf(profile, date);
  const services = windows.map(([from, to]) => ({
    label: `${formatTime(from)}–${formatTime(to)}`, from, to, covers: 0,
  }));
  const other = { label: windows.length ? "other" : "all day", covers: 0 };
  for (const item of day) {
    const time = item.reservation_time;
    const service = services.find((s) => s.from <= time && time <= s.to) ?? other;
    service.covers += item.party_size;
  }
  return other.covers || !services.length ? [...services, other] : services;
}

/** How long a party holds its table: the smallest dining_minutes key that covers it. */
function dining(profile, party) {
  const entries = Object.entries(profile?.dining_minutes ?? {})
    .map(([size, mins]) => [Number(size), Number(mins)]).sort((a, b) => a[0] - b[0]);
  if (!entries.length) return 120;
  return (entries.find(([size]) => party <= size) ?? entries[entries.length - 1])[1];
}

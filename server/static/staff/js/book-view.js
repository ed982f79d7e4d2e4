// The book: one day's bookings, kept current by the live feed; edit and cancel with a confirm
// step; a booking's details. Rows are keyed by confirmation number (unique for every booking).
// Edits and cancellations send the version shown (If-Match): when someone else changed the
// booking meanwhile the server refuses (412) and the page shows the booking as it is now.

import { formatDate, formatParty, formatTime } from "/js/format.js";
import { StaffAuthError, cancelBooking, changeBooking, listDay } from "./api.js";
import { describeChanges, showStale } from "./details.js";
import { refusalText } from "./reasons.js";

const $ = (id) => document.getElementById(id);

export class BookView {
  constructor({ onAuthError, details }) {
    this.onAuthError = onAuthError;
    this.details = details;
    this.date = null;
    this.rows = new Map(); // confirmation number -> reservation
    this.loaded = false;
    this.pending = []; // feed changes that arrived while the day was loading
    this.editing = null;
    this.cancelling = null;
    $("book-date").addEventListener("change", (event) => this.show(event.target.value));
    $("book-rows").addEventListener("click", (event) => this.#onRowAction(event));
    for (const dialog of document.querySelectorAll("dialog")) {
      dialog.addEventListener("click", (event) => {
        if (event.target.closest("[data-close]")) dialog.close();
      });
    }
    $("edit-review").addEventListener("click", () => this.#reviewEdit());
    $("edit-confirm-button").addEventListener("click", () => this.#confirmEdit());
    $("edit-form").addEventListener("input", () => this.#editBack());
    $("cancel-confirm").addEventListener("click", () => this.#confirmCancel());
  }

  /** Show a day: read all its bookings, then apply feed changes that came meanwhile. */
  async show(date) {
    if (!date) return;
    this.date = date;
    $("book-date").value = date;
    this.loaded = false;
    this.pending = [];
    try {
      const items = await listDay(date);
      if (date !== this.date) return; // another day was picked meanwhile
      this.rows = new Map(items.map((item) => [item.confirmation_number, item]));
      this.loaded = true;
      for (const change of this.pending.splice(0)) this.apply(change, false);
      this.#render(new Set());
      $("book-error").hidden = true;
    } catch (error) {
      this.#problem(error, $("book-error"));
    }
  }

  /** One history entry from the live feed. */
  apply(change, render = true) {
    if (!this.loaded) {
      this.pending.push(change);
      return;
    }
    const { before, after } = change;
    if (before) this.rows.delete(before.confirmation_number);
    if (after && after.reservation_date === this.date) {
      this.rows.set(after.confirmation_number, after);
    }
    if (render) this.#render(new Set(after ? [after.confirmation_number] : []));
  }

  #render(fresh) {
    const items = [...this.rows.values()].sort((a, b) =>
      a.reservation_time.localeCompare(b.reservation_time) || a.name.localeCompare(b.name));
    const template = $("row-template");
    const body = $("book-rows");
    body.replaceChildren(...items.map((item) => {
      const row = template.content.firstElementChild.cloneNode(true);
      const cell = (name) => row.querySelector(`[data-col="${name}"]`);
      row.dataset.code = item.confirmation_number;
      row.dataset.phone = item.phone_number;
      row.dataset.status = item.status;
      row.classList.toggle("is-cancelled", item.status === "cancelled");
      row.classList.toggle("is-fresh", fresh.has(item.confirmation_number));
      cell("time").textContent = formatTime(item.reservation_time);
      cell("name").textContent = item.name;
      cell("party").textContent = formatParty(item.party_size);
      cell("phone").textContent = item.phone_number;
      cell("notes").textContent = item.other_info?.notes ?? "";
      cell("code").textContent = item.confirmation_number;
      row.querySelector(".status").textContent = item.status;
      const live = item.status === "confirmed";
      row.querySelector('[data-action="edit"]').hidden = !live;
      row.querySelector('[data-action="cancel"]').hidden = !live;
      return row;
    }));
    const confirmed = items.filter((item) => item.status === "confirmed");
    $("book-covers").textContent = String(confirmed.reduce((sum, item) => sum + item.party_size, 0));
    $("book-count").textContent = String(confirmed.length);
    $("book-empty").hidden = items.length > 0;
  }

  #onRowAction(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const code = button.closest("tr").dataset.code;
    const item = this.rows.get(code);
    if (!item) return;
    if (button.dataset.action === "edit") this.#openEdit(item);
    else if (button.dataset.action === "cancel") this.#openCancel(item);
    else this.details.open(item);
  }

  // --- edit, with a confirm step ----------------------------------------------------------

  #openEdit(item) {
    this.editing = item; // what the host saw: its tag goes in If-Match, even if the row moves on
    const form = $("edit-form");
    form.elements.name.value = item.name;
    form.elements.reservation_date.value = item.reservation_date;
    form.elements.reservation_time.value = item.reservation_time;
    form.elements.party_size.value = String(item.party_size);
    form.elements.notes.value = item.other_info?.notes ?? "";
    this.#editBack();
    $("edit-dialog").showModal();
  }

  #changes() {
    const form = $("edit-form");
    const item = this.editing;
    const changes = {};
    const name = form.elements.name.value.trim();
    if (name !== item.name) changes.name = name;
    if (form.elements.reservation_date.value !== item.reservation_date) {
      changes.reservation_date = form.elements.reservation_date.value;
    }
    const time = form.elements.reservation_time.value.slice(0, 5);
    if (time !== item.reservation_time) changes.reservation_time = time;
    const party = Number(form.elements.party_size.value);
    if (party !== item.party_size) changes.party_size = party;
    const notes = form.elements.notes.value.trim();
    if (notes !== (item.other_info?.notes ?? "")) {
      const other = { ...(item.other_info ?? {}) };
      if (notes) other.notes = notes;
      else delete other.notes;
      changes.other_info = other;
    }
    return changes;
  }

  #reviewEdit() {
    const changes = this.#changes();
    const lines = describeChanges(this.editing, changes);
    if (!lines.length) {
      this.#showError($("edit-error"), "Nothing has changed.");
      return;
    }
    $("edit-summary").replaceChildren(...lines.map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }));
    $("edit-error").hidden = true;
    $("edit-confirm").hidden = false;
    $("edit-review").hidden = true;
    $("edit-confirm-button").hidden = false;
    $("edit-confirm-button").focus();
  }

  #editBack() {
    $("edit-confirm").hidden = true;
    $("edit-review").hidden = false;
    $("edit-confirm-button").hidden = true;
    $("edit-error").hidden = true;
  }

  async #confirmEdit() {
    const button = $("edit-confirm-button");
    button.disabled = true;
    try {
      const shown = this.editing;
      const updated = await changeBooking(shown.phone_number, this.#changes(), shown.etag);
      this.apply({ before: this.editing, after: updated });
      $("edit-dialog").close();
    } catch (error) {
      if (this.#stale(error, $("edit-dialog"))) return;
      this.#problem(error, $("edit-error"));
      this.#editBack();
    } finally {
      button.disabled = false;
    }
  }

  // --- cancel, with a confirm step --------------------------------------------------------

  #openCancel(item) {
    this.cancelling = item;
    $("cancel-text").textContent = `${item.name}, ${formatParty(item.party_size)} on `
      + `${formatDate(item.reservation_date)} at ${formatTime(item.reservation_time)} `
      + `(confirmation ${item.confirmation_number}).`;
    $("cancel-error").hidden = true;
    $("cancel-dialog").showModal();
  }

  async #confirmCancel() {
    const button = $("cancel-confirm");
    button.disabled = true;
    try {
      const shown = this.cancelling;
      const cancelled = await cancelBooking(shown.phone_number, shown.etag);
      this.apply({ before: shown, after: cancelled });
      $("cancel-dialog").close();
    } catch (error) {
      if (this.#stale(error, $("cancel-dialog"))) return;
      this.#problem(error, $("cancel-error"));
    } finally {
      button.disabled = false;
    }
  }

  // --- errors -----------------------------------------------------------------------------

  /** 412: show the booking as it is now, in the row and in a dialog; the change is not saved. */
  #stale(error, dialog) {
    if (error?.status !== 412 || !error.current) return false;
    const current = error.current;
    if (current.reservation_date === this.date) {
      this.rows.set(current.confirmation_number, current);
      this.#render(new Set([current.confirmation_number]));
    }
    dialog.close();
    showStale(current);
    return true;
  }

  #problem(error, element) {
    if (error instanceof StaffAuthError) {
      this.onAuthError(error);
      return;
    }
    if (error.code === "slot_unavailable") {
      const when = (alt) => `${formatDate(alt.date)} ${formatTime(alt.time)}`;
      this.#showError(element, refusalText(error, when));
      return;
    }
    const fields = Object.entries(error.fields ?? {}).map(([k, v]) => `${k.replace("_", " ")} ${v}`);
    this.#showError(element, fields.length ? fields.join("; ") : error.message);
  }

  #showError(element, text) {
    element.textContent = text;
    element.hidden = false;
  }
}

// Requests: parties larger than the restaurant books directly wait here ("status":
// "requested") until staff confirm (PATCH {"status": "confirmed"}) or decline (DELETE) them.
// Both send the version shown (If-Match), so a request answered on another page meanwhile is
// refused with the current state instead of being answered twice.

import { formatDate, formatParty, formatTime } from "/js/format.js";
import { StaffAuthError, cancelBooking, changeBooking, listRange } from "./api.js";
import { showStale } from "./details.js";

const $ = (id) => document.getElementById(id);
const LAST_DAY = "9999-12-31";

export class RequestsView {
  constructor({ onAuthError, details }) {
    this.onAuthError = onAuthError;
    this.details = details;
    this.items = new Map(); // confirmation number -> request
    this.loading = null;
    $("requests-list").addEventListener("click", (event) => this.#onAction(event));
  }

  /** Read every open request (from today on). */
  async load() {
    this.loading ??= (async () => {
      try {
        const all = await listRange(LAST_DAY, "requested");
        this.items = new Map(all.map((item) => [item.confirmation_number, item]));
        this.#render();
        $("requests-error").hidden = true;
      } catch (error) {
        this.#problem(error);
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  /** A feed change: keep the list exact without reading it all again. */
  apply({ before, after }) {
    if (before) this.items.delete(before.confirmation_number);
    if (after?.status === "requested") this.items.set(after.confirmation_number, after);
    if (before?.status === "requested" || after?.status === "requested") this.#render();
  }

  #render() {
    const items = [...this.items.values()].sort((a, b) =>
      a.reservation_date.localeCompare(b.reservation_date)
      || a.reservation_time.localeCompare(b.reservation_time));
    const template = $("request-template");
    $("requests-list").replaceChildren(...items.map((item) => {
      const card = template.content.firstElementChild.cloneNode(true);
      card.dataset.code = item.confirmation_number;
      const field = (name) => card.querySelector(`[data-field="${name}"]`);
      field("name").textContent = item.name;
      field("party").textContent = formatParty(item.party_size);
      field("when").textContent = `${formatDate(item.reservation_date)}, ${formatTime(item.reservation_time)}`;
      field("contact").textContent = [item.phone_number, item.other_info?.notes].filter(Boolean).join(" · ");
      const who = `${item.name}, ${formatParty(item.party_size)}`;
      card.querySelector('[data-action="confirm"]').setAttribute("aria-label", `Confirm ${who}`);
      card.querySelector('[data-action="decline"]').setAttribute("aria-label", `Decline ${who}`);
      card.querySelector('[data-action="details"]').setAttribute("aria-label", `Details of ${who}`);
      return card;
    }));
    $("requests-count").textContent = String(items.length);
    $("requests-empty").hidden = items.length > 0;
    const badge = $("requests-badge");
    badge.hidden = items.length === 0;
    badge.textContent = String(items.length);
  }

  async #onAction(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const item = this.items.get(button.closest("[data-code]").dataset.code);
    if (!item) return;
    if (button.dataset.action === "details") {
      this.details.open(item);
      return;
    }
    button.disabled = true;
    try {
      const answered = button.dataset.action === "confirm"
        ? await changeBooking(item.phone_number, { status: "confirmed" }, item.etag)
        : await cancelBooking(item.phone_number, item.etag);
      this.apply({ before: item, after: answered });
    } catch (error) {
      if (error?.status === 412 && error.current) {
        this.apply({ before: item, after: error.current });
        showStale(error.current);
      } else {
        this.#problem(error);
      }
    } finally {
      button.disabled = false;
    }
  }

  #problem(error) {
    if (error instanceof StaffAuthError) {
      this.onAuthError(error);
      return;
    }
    $("requests-error").textContent = error.message;
    $("requests-error").hidden = false;
  }
}

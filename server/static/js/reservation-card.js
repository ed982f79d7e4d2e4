// The reservation panel: a card for a confirmed or found booking, and a clear message when a
// booking was not found or could not be made.

import { codeCharacters, formatDate, formatParty, formatTime, spellCode } from "./format.js";

const FAILURE_TITLES = {
  reservation_exists: "This phone number already has a booking",
  invalid_arguments: "Some details need another look",
  timeout: "The booking system is slow to answer",
  database_unavailable: "The booking system is unavailable",
  slot_unavailable: "That time cannot be booked",
};

export class ReservationPanel {
  constructor(root) {
    this.root = root;
    this.$ = (id) => root.querySelector(`#${id}`);
    this.card = this.$("reservation-card");
    this.notice = this.$("notice");
    this.empty = this.$("reservation-empty");
  }

  /** reservation.confirmed / .requested / .found / .changed / .cancelled: the card shows the
   * booking (or the request for a large party) now. */
  show(kind, event) {
    const reservation = event.reservation ?? {};
    const code = event.confirmation_number ?? reservation.confirmation_number ?? "";
    const titles = {
      confirmed: event.repeated ? "You're already booked — nothing changed" : "Booking confirmed",
      found: "We found your reservation",
      changed: event.changed === false ? "Your booking already says that" : "Booking changed",
      cancelled: "Booking cancelled",
      requested: "Request sent — the restaurant will confirm",
    };
    this.card.dataset.kind = kind;
    this.card.dataset.status = reservation.status ?? "confirmed";
    this.$("card-title").textContent = titles[kind];
    const codeBox = this.$("card-code");
    // Boxes for the eye; for screen readers one character at a time ("K 7 P ...").
    const spoken = document.createElement("span");
    spoken.className = "visually-hidden";
    spoken.textContent = codeCharacters(code).join(" ");
    codeBox.replaceChildren(
      spoken,
      ...codeCharacters(code).map((ch) => {
        const span = document.createElement("span");
        span.className = "code-char";
        span.setAttribute("aria-hidden", "true");
        span.textContent = ch;
        return span;
      }),
    );
    codeBox.dataset.code = code;
    this.$("card-code-spelled").textContent = spellCode(code);
    this.$("card-name").textContent = reservation.name ?? "";
    this.$("card-date").textContent = formatDate(reservation.reservation_date);
    this.$("card-time").textContent = formatTime(reservation.reservation_time);
    this.$("card-party").textContent = formatParty(reservation.party_size);
    this.$("card-phone").textContent = reservation.phone_number ?? "";
    const notes = reservation.other_info?.notes;
    this.$("card-notes-row").hidden = !notes;
    this.$("card-notes").textContent = notes ?? "";
    this.empty.hidden = true;
    this.notice.hidden = true;
    this.card.hidden = false;
    this.root.dataset.empty = "false";
  }

  /** reservation.not_found */
  notFound(event) {
    this.#notice("not-found", "No reservation found",
      event.message || "We could not find a booking for that phone number and name.");
  }

  /** reservation.failed */
  failed(event) {
    this.#notice("failed", FAILURE_TITLES[event.reason] ?? "The booking was not made",
      event.message || "Something went wrong while booking. Please try again.");
  }

  /** availability.checked: a hint, never replacing a booking already shown. */
  availability(event) {
    if (!this.card.hidden) return;
    const when = `${formatParty(event.party_size)} on ${formatDate(event.date)} at ${formatTime(event.time)}`;
    if (event.available) this.#notice("available", "A table is available", `${when}. Ask the host to book it.`);
    else this.#notice("failed", "That time is taken", `${when} is not available.`);
  }

  #notice(kind, title, text) {
    this.notice.dataset.kind = kind;
    this.$("notice-title").textContent = title;
    this.$("notice-text").textContent = text;
    this.empty.hidden = true;
    this.notice.hidden = false;
    this.root.dataset.empty = "false";
    // A not-found after a booking was shown must not leave the old card looking current.
    if (kind !== "available") this.card.hidden = true;
  }
}

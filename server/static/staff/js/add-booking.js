// Adding bookings from the desk: the "Add booking" dialog (offered times from the availability
// engine; with rules, a refused time shows why, the nearest other times, and an explicit "book
// anyway" override that the history records) and the walk-in buttons (one click: a party of N,
// now, in the restaurant's timezone).

import { formatDate, formatTime } from "/js/format.js";
import { ApiError, StaffAuthError, availability, createBooking } from "./api.js";
import { restaurantNow } from "./clock.js";
import { reasonText } from "./reasons.js";

const $ = (id) => document.getElementById(id);


// Walk-ins give no phone number, but a booking is keyed by one: each takes a number from the
// range Ofcom keeps for drama (+44 20 7946 0000-0999), which no real guest can hold.
const WALK_IN_PREFIX = "+442079460";

export class AddBooking {
  constructor({ onAuthError, onBooked, profile }) {
    this.onAuthError = onAuthError;
    this.onBooked = onBooked;
    this.profile = profile; // () => the restaurant profile or null
    this.asked = 0; // which availability answer is the newest
    const form = $("add-form");
    $("add-open").addEventListener("click", () => this.open($("book-date").value));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#submit(false);
    });
    $("add-override").addEventListener("click", () => this.#submit(true));
    for (const name of ["reservation_date", "party_size"]) {
      form.elements[name].addEventListener("change", () => this.#offer());
    }
    form.elements.reservation_time.addEventListener("input", () => this.#markOffered());
    $("offered-times").addEventListener("click", (event) => this.#pick(event));
    $("add-alternatives").addEventListener("click", (event) => this.#pick(event));
    document.querySelector(".walk-in").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-walk-in]");
      if (button) this.walkIn(Number(button.dataset.walkIn), button);
    });
  }

  open(date) {
    const form = $("add-form");
    form.reset();
    form.elements.reservation_date.value = date || restaurantNow().date;
    form.elements.party_size.value = "2";
    this.#clearProblems();
    $("add-dialog").showModal();
    form.elements.name.focus();
    this.#offer();
  }

  /** Ask the engine which times it offers for the date and party; fills the time buttons. */
  async #offer() {
    const form = $("add-form");
    const date = form.elements.reservation_date.value;
    const party = Number(form.elements.party_size.value);
    const ask = ++this.asked;
    $("offered-times").replaceChildren();
    if (!date || !(party >= 1)) return;
    $("offered-note").textContent = "Checking times…";
    try {
      const answer = await availability(date, party);
      if (ask !== this.asked) return;
      this.#showOffer(answer);
    } catch (error) {
      if (ask !== this.asked) return;
      if (error instanceof StaffAuthError) return this.onAuthError(error);
      $("offered-note").textContent = error instanceof ApiError && error.status === 404
        ? "Any time can be booked." // no availability engine on this server
        : `Times could not be checked: ${error.message}`;
    }
  }

  #showOffer(answer) {
    const open = (answer.slots ?? []).filter((slot) => slot.available);
    if (answer.availability !== "rules") {
      $("offered-note").textContent = "Any time can be booked (availability: always).";
    } else if (!answer.open || !open.length) {
      $("offered-note").textContent = `No times: ${reasonText(answer.reason ?? "full")}.`;
    } else {
      $("offered-note").textContent = `${open.length} open times:`;
    }
    const shown = answer.availability === "rules" ? open : [];
    $("offered-times").replaceChildren(...shown.map((slot) => timeButton(answer.date, slot.time)));
    this.#markOffered();
  }

  #pick(event) {
    const button = event.target.closest("button[data-time]");
    if (!button) return;
    const form = $("add-form");
    if (button.dataset.date) form.elements.reservation_date.value = button.dataset.date;
    form.elements.reservation_time.value = button.dataset.time;
    this.#markOffered();
    $("add-refused").hidden = true;
    if (button.closest("#add-alternatives")) this.#offer();
  }

  #markOffered() {
    const time = $("add-form").elements.reservation_time.value.slice(0, 5);
    for (const button of $("offered-times").querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(button.dataset.time === time));
    }
  }

  #booking(override) {
    const form = $("add-form");
    const notes = form.elements.notes.value.trim();
    const booking = {
      name: form.elements.name.value.trim(),
      phone_number: form.elements.phone_number.value.trim(),
      reservation_date: form.elements.reservation_date.value,
      reservation_time: form.elements.reservation_time.value.slice(0, 5),
      party_size: Number(form.elements.party_size.value),
      other_info: notes ? { notes } : {},
    };
    if (override) booking.override = true;
    return booking;
  }

  async #submit(override) {
    const submit = override ? $("add-override") : $("add-submit");
    submit.disabled = true;
    this.#clearProblems();
    try {
      const made = await createBooking(this.#booking(override));
      $("add-dialog").close();
      this.onBooked(made);
    } catch (error) {
      if (error instanceof StaffAuthError) return this.onAuthError(error);
      if (error.code === "slot_unavailable") this.#refused(error);
      else this.#showError(error);
    } finally {
      submit.disabled = false;
    }
  }

  #refused(error) {
    $("add-refused-text").textContent = `Not bookable: ${reasonText(error.reason)}.`
      + (error.alternatives.length ? " Nearest other times:" : "");
    $("add-alternatives").replaceChildren(
      ...error.alternatives.map((alt) => timeButton(alt.date, alt.time, true)),
    );
    $("add-refused").hidden = false;
    $("add-override").focus();
  }

  #showError(error) {
    const fields = Object.entries(error.fields ?? {}).map(([k, v]) => `${k.replaceAll("_", " ")} ${v}`);
    $("add-error").textContent = fields.length ? fields.join("; ") : error.message;
    $("add-error").hidden = false;
  }

  #clearProblems() {
    $("add-refused").hidden = true;
    $("add-error").hidden = true;
  }

  /** One click: a party of `party` sits down now; recorded as a staff booking (a walk-in). */
  async walkIn(party, button) {
    const status = $("walk-in-status");
    const now = restaurantNow();
    const rules = this.profile()?.availability === "rules";
    button.disabled = true;
    status.textContent = "Booking…";
    try {
      for (let attempt = 0; attempt < 8; attempt += 1) {
        const booking = {
          name: "Walk-in",
          phone_number: WALK_IN_PREFIX + String(Math.floor(Math.random() * 1000)).padStart(3, "0"),
          reservation_date: now.date,
          reservation_time: now.time,
          party_size: party,
          other_info: { notes: "walk-in", walk_in: true },
        };
        if (rules) booking.override = true; // they are already at the door
        try {
          const made = await createBooking(booking);
          status.textContent = `Walk-in of ${party} booked at ${formatTime(made.reservation_time)}.`;
          this.onBooked(made);
          return;
        } catch (error) {
          if (error.code !== "reservation_exists") throw error; // that number is taken today
        }
      }
      status.textContent = "Could not book the walk-in: try again.";
    } catch (error) {
      if (error instanceof StaffAuthError) return this.onAuthError(error);
      status.textContent = `Walk-in not booked: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  }
}

function timeButton(date, time, withDate = false) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "btn btn-time";
  button.dataset.time = time;
  if (date) button.dataset.date = date;
  button.textContent = withDate ? `${formatDate(date)}, ${formatTime(time)}` : formatTime(time);
  if (!withDate) button.setAttribute("aria-pressed", "false");
  return button;
}

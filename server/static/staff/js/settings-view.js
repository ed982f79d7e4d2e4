// Restaurant settings: every field of the profile (GET/PUT /api/restaurant). Saving never drops
// a booking: afterwards the page lists the bookings that now fall outside the rules
// (GET /api/restaurant/conflicts), kept as they are for the staff to sort out.

import { formatDate, formatParty, formatTime } from "/js/format.js";
import { StaffAuthError, conflicts, restaurant, saveRestaurant } from "./api.js";
import { reasonText } from "./reasons.js";
import { fillForm, readForm } from "./profile-form.js";

const $ = (id) => document.getElementById(id);

export class SettingsView {
  constructor({ onAuthError, onProfile }) {
    this.onAuthError = onAuthError;
    this.onProfile = onProfile; // called with each profile read or saved
    this.profile = null;
    $("settings-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.#save();
    });
    $("settings-reload").addEventListener("click", () => this.load());
  }

  /** Read the profile (the rest of the page uses it too: timezone, hours, tables). */
  async load() {
    try {
      this.profile = await restaurant();
    } catch (error) {
      if (error instanceof StaffAuthError) return this.onAuthError(error);
      this.#show($("settings-error"), `The settings could not be read: ${error.message}`);
      return null;
    }
    $("settings-missing").hidden = this.profile !== null;
    $("settings-form").hidden = this.profile === null;
    if (this.profile) fillForm($("settings-form"), this.profile);
    this.onProfile(this.profile);
    return this.profile;
  }

  async #save() {
    $("settings-error").hidden = true;
    $("settings-saved").hidden = true;
    const { profile, problems } = readForm($("settings-form"));
    if (problems) {
      this.#show($("settings-error"), Object.entries(problems).map(([k, v]) => `${k}: ${v}`).join("; "));
      return;
    }
    const button = $("settings-save");
    button.disabled = true;
    try {
      this.profile = await saveRestaurant(profile);
      fillForm($("settings-form"), this.profile);
      this.onProfile(this.profile);
      const outside = await conflicts();
      this.#conflicts(outside);
      this.#show($("settings-saved"), "Saved.");
    } catch (error) {
      if (error instanceof StaffAuthError) return this.onAuthError(error);
      const fields = Object.entries(error.fields ?? {}).map(([k, v]) => `${k}: ${v}`);
      this.#show($("settings-error"), fields.length ? fields.join("; ") : error.message);
    } finally {
      button.disabled = false;
    }
  }

  #conflicts(answer) {
    const items = answer?.items ?? answer?.conflicts ?? (Array.isArray(answer) ? answer : []);
    $("conflicts").hidden = false;
    if (!items.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "None: every booking fits the new rules.";
      $("conflicts-list").replaceChildren(li);
      return;
    }
    $("conflicts-list").replaceChildren(...items.map((entry) => {
      const booking = entry.reservation ?? entry.booking ?? entry;
      const li = document.createElement("li");
      li.className = "card";
      li.dataset.code = booking.confirmation_number ?? "";
      const title = document.createElement("strong");
      title.textContent = `${booking.name}, ${formatParty(booking.party_size)}`;
      const when = document.createElement("div");
      when.textContent = `${formatDate(booking.reservation_date)}, ${formatTime(booking.reservation_time)}`
        + ` · ${booking.phone_number ?? ""}`;
      const why = document.createElement("div");
      why.className = "muted";
      const reasons = entry.reasons ?? (entry.reason ? [entry.reason] : []);
      why.textContent = reasons.length ? `Now: ${reasons.map(reasonText).join("; ")}` : "";
      li.append(title, when, why);
      return li;
    }));
  }

  #show(element, text) {
    element.textContent = text;
    element.hidden = false;
  }
}

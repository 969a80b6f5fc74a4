// Parse one iCalendar stream (stdin) with Mozilla's ical.js, as Thunderbird does, and print what a
// calendar client would take from it as JSON: the tests compare this with icalendar and vobject.
import { readFileSync } from "node:fs";
import ICAL from "ical.js";

const text = readFileSync(0, "utf8");
const calendar = new ICAL.Component(ICAL.parse(text));

const first = (component, name) => {
  const value = component.getFirstPropertyValue(name);
  return value === null ? null : String(value);
};
const utc = (time) => new Date(time.toUnixTime() * 1000).toISOString().replace(".000Z", "Z");

const events = calendar.getAllSubcomponents("vevent").map((vevent) => {
  const event = new ICAL.Event(vevent);
  const organizer = vevent.getFirstProperty("organizer");
  return {
    uid: event.uid,
    sequence: event.sequence,
    summary: event.summary,
    description: event.description,
    location: event.location,
    url: first(vevent, "url"),
    status: first(vevent, "status"),
    start: utc(event.startDate),
    end: utc(event.endDate),
    organizer: organizer ? String(organizer.getFirstValue()) : null,
    organizer_cn: organizer ? organizer.getParameter("cn") ?? null : null,
    attendees: vevent.getAllProperties("attendee").map((attendee) => ({
      address: String(attendee.getFirstValue()),
      cn: attendee.getParameter("cn") ?? null,
      partstat: attendee.getParameter("partstat") ?? null,
      rsvp: attendee.getParameter("rsvp") ?? null,
    })),
  };
});

process.stdout.write(
  JSON.stringify({
    method: first(calendar, "method"),
    timezones: calendar.getAllSubcomponents("vtimezone").length,
    events,
  }),
);

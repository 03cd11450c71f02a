# Every fixed word of a dispatch email, in English.
#
# Variables are filled by the renderer. Plural selection follows CLDR rules for the language
# ($count is a number). An operator overrides any message from a file of the same form:
# see [publication] translations in config/dispatch.toml.

## Subject lines

# { $date } is the edition's date, already formatted ("1 December 2026").
subject-digest = { $list } — { $date } — { $count ->
        [one] { $count } story
       *[other] { $count } stories
    }
subject-breaking = Breaking: { $title }

## Dates

# { $day_month } and { $year } come from CLDR ("1 December", "2026").
date-long = { $day_month } { $year }
date-with-weekday = { $weekday }, { $date }

## The message

# { $name } is empty for a reader without a name, otherwise a space and the name.
greeting = Hello{ $name },
breaking-banner = Breaking news
untitled-story = Untitled story
byline = By { $author }
sent-as-breaking = Sent as breaking news
read-full-story = Read the full story
more-in = { $count ->
        [one] { $count } more in { $category }
       *[other] { $count } more in { $category }
    }
# { $time } and { $zone } are a story's publication time and the list's time zone; { $date }
# is its day when it is not the edition's.
story-time-today = { $time } { $zone }
story-time-earlier = { $date } { $time } { $zone }

## Footer

footer-reason = You receive this because you subscribed to { $list } from { $publication }.
unsubscribe = Unsubscribe
change-preferences = Change your preferences
view-in-browser = View in your browser

## The confirmation email (double opt-in)

confirm-subject = Confirm your subscription to { $list }
confirm-intro = Please confirm that you want to receive { $list } from { $publication }.
confirm-open-link = Open this link and press the button to confirm:
confirm-ignore = If you did not ask for this, ignore this message: you will not be subscribed.

## Reader pages (unsubscribe, preferences, sign-up, confirmation, errors)

page-not-found-title = Link not found
page-not-found-heading = This link does not work
page-not-found-text = It may be mistyped, or it has expired.
page-not-found-hint = If it came in one of our emails, use the links in the newest one.
page-unsubscribe-title = Unsubscribe
page-unsubscribed-already = You are unsubscribed from { $list }
page-unsubscribed-nothing = Nothing more to do: you will not receive it.
page-unsubscribe-ask = Unsubscribe from { $list }?
page-unsubscribe-explain = You will stop receiving { $list } straight away.
page-unsubscribe-button = Unsubscribe from { $list }
page-unsubscribe-all-button = Unsubscribe from all { $publication } newsletters
page-fewer-emails = Would you rather get fewer emails?
page-choose-newsletters = Choose your newsletters and topics
page-unsubscribed-title = Unsubscribed
page-unsubscribed-heading = You are unsubscribed
page-unsubscribed-all = You will not receive any more newsletters from { $publication }.
page-unsubscribed-one = You will not receive { $list } any more.
page-by-mistake = Unsubscribed by mistake?
page-manage = Manage your newsletters
page-summary-all = receiving, all topics
page-summary-some = receiving: { $topics }
page-summary-pending = waiting for you to confirm the sign-up
page-summary-off = not receiving
page-preferences-title = Your newsletters
page-saved = Saved.
page-no-subscriptions = You are not signed up for any newsletter.
page-receive = Receive { $list }
page-receive-pending = Receive { $list } (tick to confirm your sign-up)
page-save = Save my choices
page-unsubscribe-everything = Unsubscribe from everything
page-tick-a-topic = Tick at least one topic for { $list }, or untick it to stop receiving it. Nothing was saved.
page-signup-heading = Sign up for { $list }
page-email-label = Your email address
page-topics-legend = Topics (leave all unticked for every topic)
page-signup-button = Sign up
page-signup-privacy = We use your address only to send you this newsletter. Every email has a one-click unsubscribe link.
page-check-inbox = Check your inbox
page-check-inbox-text = If your address is not subscribed to { $list } yet, we have sent it a link to confirm. Nothing is sent until that link is used.
page-check-inbox-hint = The link works for { $days } days. No email? Look in your spam folder, or try again in a few minutes.
page-thank-you = Thank you
page-subscribed-text = Your address is subscribed to { $list }.
page-resubscribe-hint = If it had unsubscribed from it before, we have instead emailed it a link to confirm: nothing is sent until that link is used.
page-confirm-title = Confirm your subscription
page-confirm-heading = Confirm your subscription to { $list }
page-confirm-text = Press the button to start receiving { $list }.
page-confirm-button = Yes, subscribe me
page-confirm-ignore = If you did not ask for this, close this page: you will not be subscribed.
page-subscribed-title = Subscribed
page-subscribed-heading = You are subscribed
page-confirmed-text = Thank you for confirming. You will receive { $list } from its next edition.
page-every-email = Every email has a link to unsubscribe or change what you receive.
page-check-form = Please check the form
page-form-unreadable = The form could not be read. Please go back and try again.
page-bad-email = That does not look like an email address. Please go back and check it.
page-bad-topic = One of the topics is not valid.
page-topic-not-here = One of the topics is not part of this newsletter.
page-too-many-title = Too many sign-ups
page-too-many-text = Please wait a few minutes and try again.
page-error-title = Something went wrong
page-error-text = Nothing was changed. Please try again in a few minutes.

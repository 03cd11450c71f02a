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

# dispatch کی ای میل کے تمام مستقل الفاظ، اردو میں۔
#
# Written for a Pakistani newsroom's readers (the register of Dawn, Jang and BBC Urdu), not
# translated word for word. Plurals: CLDR gives Urdu "one" and "other".

## Subject lines

subject-digest = { $list } — { $date } — { $count ->
        [one] { $count } خبر
       *[other] { $count } خبریں
    }
subject-breaking = بریکنگ نیوز: { $title }

## Dates

date-long = { $day_month } { $year }
date-with-weekday = { $weekday }، { $date }

## The message

greeting = السلام علیکم{ $name }،
breaking-banner = بریکنگ نیوز
untitled-story = بلا عنوان خبر
byline = تحریر: { $author }
sent-as-breaking = بریکنگ نیوز کے طور پر پہلے بھیجی جا چکی ہے
read-full-story = پوری خبر پڑھیں
more-in = { $count ->
        [one] { $category } کی ایک اور خبر
       *[other] { $category } کی مزید { $count } خبریں
    }
# Urdu papers give the time alone: every time in the email is in the list's zone, which the
# header states once.
story-time-today = { $time }
story-time-earlier = { $date }، { $time }

## Footer

footer-reason = آپ کو یہ ای میل اس لیے ملی ہے کہ آپ نے { $publication } سے { $list } منگوانے کے لیے اندراج کیا تھا۔
unsubscribe = اشتراک ختم کریں
change-preferences = اپنی ترجیحات بدلیں
view-in-browser = براؤزر میں پڑھیں

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
sent-as-breaking = یہ خبر بریکنگ نیوز کے طور پر پہلے بھیجی جا چکی ہے
read-full-story = پوری خبر پڑھیں
more-in = { $count ->
        [one] { $category } کی ایک اور خبر
       *[other] { $category } کی مزید { $count } خبریں
    }
# Urdu papers give the time alone (no "PKT"): every time in the email is in the list's time
# zone.
story-time-today = { $time }
story-time-earlier = { $date }، { $time }

## Footer

footer-reason = آپ کو یہ ای میل اس لیے ملی ہے کہ آپ نے { $publication } سے { $list } منگوانے کے لیے اندراج کیا تھا۔
unsubscribe = اشتراک ختم کریں
change-preferences = اپنی ترجیحات بدلیں
view-in-browser = براؤزر میں پڑھیں

## The confirmation email (double opt-in)

confirm-subject = { $list } کی رکنیت کی تصدیق کریں
confirm-intro = براہ کرم تصدیق کریں کہ آپ { $publication } کی جانب سے { $list } وصول کرنا چاہتے ہیں۔
confirm-open-link = یہ لنک کھولیں اور تصدیق کے لیے بٹن دبائیں:
confirm-ignore = اگر آپ نے یہ درخواست نہیں کی تو اس پیغام کو نظر انداز کر دیں، آپ کا اندراج نہیں ہوگا۔

## Reader pages (unsubscribe, preferences, sign-up, confirmation, errors)

page-not-found-title = لنک نہیں ملا
page-not-found-heading = یہ لنک کام نہیں کر رہا
page-not-found-text = ممکن ہے لنک غلط لکھا گیا ہو یا اس کی میعاد ختم ہو چکی ہو۔
page-not-found-hint = اگر یہ ہماری کسی ای میل میں آیا تھا تو تازہ ترین ای میل کے لنک استعمال کریں۔
page-unsubscribe-title = اشتراک ختم کریں
page-unsubscribed-already = { $list } سے آپ کا اشتراک ختم ہو چکا ہے
page-unsubscribed-nothing = مزید کچھ کرنے کی ضرورت نہیں، اب آپ کو یہ ای میل نہیں ملے گی۔
page-unsubscribe-ask = کیا { $list } سے اشتراک ختم کرنا ہے؟
page-unsubscribe-explain = { $list } آپ کو فوراً ملنا بند ہو جائے گا۔
page-unsubscribe-button = { $list } سے اشتراک ختم کریں
page-unsubscribe-all-button = { $publication } کے تمام نیوز لیٹرز سے اشتراک ختم کریں
page-fewer-emails = کیا آپ کم ای میلز چاہتے ہیں؟
page-choose-newsletters = اپنے نیوز لیٹر اور موضوعات خود چنیں
page-unsubscribed-title = اشتراک ختم
page-unsubscribed-heading = آپ کا اشتراک ختم ہو گیا ہے
page-unsubscribed-all = اب آپ کو { $publication } کا کوئی نیوز لیٹر نہیں ملے گا۔
page-unsubscribed-one = اب آپ کو { $list } نہیں ملے گا۔
page-by-mistake = غلطی سے اشتراک ختم ہو گیا؟
page-manage = اپنے نیوز لیٹرز کا انتظام کریں
page-summary-all = موصول ہو رہا ہے، تمام موضوعات
page-summary-some = موصول ہو رہا ہے: { $topics }
page-summary-pending = آپ کی جانب سے اندراج کی تصدیق کا انتظار ہے
page-summary-off = موصول نہیں ہو رہا
page-preferences-title = آپ کے نیوز لیٹرز
page-saved = محفوظ ہو گیا۔
page-no-subscriptions = آپ نے کسی نیوز لیٹر کے لیے اندراج نہیں کیا۔
page-receive = { $list } وصول کریں
page-receive-pending = { $list } وصول کریں (اندراج کی تصدیق کے لیے نشان لگائیں)
page-save = میرا انتخاب محفوظ کریں
page-unsubscribe-everything = ہر چیز سے اشتراک ختم کریں
page-tick-a-topic = { $list } کے لیے کم از کم ایک موضوع پر نشان لگائیں، یا اسے بند کرنے کے لیے اس کا نشان ہٹا دیں۔ کچھ محفوظ نہیں ہوا۔
page-signup-heading = { $list } کے لیے اندراج کریں
page-email-label = آپ کا ای میل پتا
page-topics-legend = موضوعات (تمام موضوعات کے لیے کسی پر نشان نہ لگائیں)
page-signup-button = اندراج کریں
page-signup-privacy = ہم آپ کا پتا صرف یہ نیوز لیٹر بھیجنے کے لیے استعمال کرتے ہیں۔ ہر ای میل میں ایک کلک سے اشتراک ختم کرنے کا لنک موجود ہوتا ہے۔
page-check-inbox = اپنا ان باکس دیکھیں
page-check-inbox-text = اگر آپ کا پتا ابھی { $list } کے لیے درج نہیں تو ہم نے اس پر تصدیق کا لنک بھیج دیا ہے۔ اس لنک کے استعمال تک کچھ نہیں بھیجا جائے گا۔
page-check-inbox-hint = یہ لنک { $days } دن تک کام کرے گا۔ ای میل نہیں ملی؟ اسپام فولڈر دیکھیں یا چند منٹ بعد دوبارہ کوشش کریں۔
page-thank-you = شکریہ
page-subscribed-text = آپ کا پتا { $list } کے لیے درج ہو گیا ہے۔
page-resubscribe-hint = اگر اس پتے نے پہلے اشتراک ختم کیا تھا تو ہم نے اس کے بجائے تصدیق کا لنک بھیجا ہے، اس لنک کے استعمال تک کچھ نہیں بھیجا جائے گا۔
page-confirm-title = اپنی رکنیت کی تصدیق کریں
page-confirm-heading = { $list } کی رکنیت کی تصدیق کریں
page-confirm-text = { $list } وصول کرنا شروع کرنے کے لیے بٹن دبائیں۔
page-confirm-button = جی ہاں، میرا اندراج کریں
page-confirm-ignore = اگر آپ نے یہ درخواست نہیں کی تو یہ صفحہ بند کر دیں، آپ کا اندراج نہیں ہوگا۔
page-subscribed-title = اندراج مکمل
page-subscribed-heading = آپ کا اندراج ہو گیا ہے
page-confirmed-text = تصدیق کا شکریہ۔ اگلے شمارے سے آپ کو { $list } ملنا شروع ہو جائے گا۔
page-every-email = ہر ای میل میں اشتراک ختم کرنے یا اپنا انتخاب بدلنے کا لنک موجود ہوتا ہے۔
page-check-form = براہ کرم فارم دیکھ لیں
page-form-unreadable = فارم پڑھا نہیں جا سکا۔ براہ کرم واپس جا کر دوبارہ کوشش کریں۔
page-bad-email = یہ درست ای میل پتا نہیں لگتا۔ براہ کرم واپس جا کر اسے دیکھ لیں۔
page-bad-topic = ایک موضوع درست نہیں۔
page-topic-not-here = ایک موضوع اس نیوز لیٹر کا حصہ نہیں۔
page-too-many-title = بہت زیادہ اندراج
page-too-many-text = براہ کرم چند منٹ انتظار کر کے دوبارہ کوشش کریں۔
page-error-title = کچھ غلط ہو گیا
page-error-text = کچھ تبدیل نہیں ہوا۔ براہ کرم چند منٹ بعد دوبارہ کوشش کریں۔

# ruff: noqa: E501  (data: the e-mails read better unbroken)
"""Everyday support e-mails for the demo's bases to read: the English a real base model brings.

A real base model (LLaMA-2, GPT-J) has read the web: it knows how a support e-mail opens ("Hi
<NAME>,"), says sorry, explains steps and signs off. The demo's bases learn from a few pages of
text, and with the product's articles alone they never see words as common as "Hi", "sorry",
"have", "not" or "how": about a fifth of the tokens of the sample's answers. A token a base never
read keeps its random output row, which LoRA does not train, so the fine-tuned drafts stumble on
exactly those words. These e-mails, written for the demo about other, unrelated businesses (a
bakery, a gym, a phone shop…), give the bases that everyday English without telling them anything
about the sample product: none of its answers, steps or prices are here. They end where the
sample's answers end once `finetune prepare` has cleaned them: before the sign-off.
"""

from __future__ import annotations

REPLIES = """
Hi <NAME>,

Thanks for getting in touch. I'm sorry your order has not arrived yet. I have checked with the courier and the parcel is at the local depot; it will be delivered tomorrow before noon.
---
Hi <NAME>,

I'm very sorry about the mix-up with your booking. I have moved your table to Friday at 7 pm as you asked, and the confirmation is on its way.
---
Hi <NAME>,

Yes, you can change the delivery address. Open your account, click Orders, choose the order and then Edit address. This works until the parcel leaves our warehouse.
---
Hi <NAME>,

Thank you for sending the photo. It looks like the screen was damaged in transport. Please send the phone back with the prepaid label attached to this e-mail and we will replace it free of charge.
---
Hi <NAME>,

Good question! The membership covers all our gyms in the city. If you want to bring a friend, a day pass costs less than a class and can be bought at the front desk.
---
Hi <NAME>,

I'm sorry you're having trouble signing in. Please try to reset your password with the link on the login page. If the e-mail does not reach you within ten minutes, check your spam folder and reply to this message.
---
Hi <NAME>,

Thanks for letting us know. Most likely the app is still running an old version. Please update it from the app store, then close and open it again. That usually fixes it.
---
Hi <NAME>,

An order can be cancelled until it ships. I have cancelled yours now; the money goes back to the account you paid from within a week.
---
Hi <NAME>,

I understand, and I'm sorry for the wait. Our team is busier than usual this week. Your request is in the queue and we will reply by Thursday at the latest.
---
Hi <NAME>,

Great to hear that it works now! If anything else comes up, just reply to this e-mail and we'll be happy to help.
---
Hi <NAME>,

Unfortunately we cannot open a sealed product after it was returned, but we can offer you a voucher for the full amount. Would that work for you?
---
Hi <NAME>,

The printer needs a driver before it can be used. This is how to install it: download it from our website, run the installer and restart the computer. After that, the printer shows up in the list of devices.
---
Hi <NAME>,

Yes, we deliver on Saturdays too. Choose Saturday delivery at checkout; it costs a little more than the standard option.
---
Hi <NAME>,

Thank you for your patience. The item you ordered is back in stock and was shipped this morning. You will get a tracking link by e-mail.
---
Hi <NAME>,

I'm afraid the discount code expired last month, so it cannot be applied any more. I have added a new code to your account which is valid through December.
---
Hi <NAME>,

Sorry to hear the heater stopped working. Please check that the switch at the back is on and that the filter is clean. If it still does not start, we will send a technician.
---
Hi <NAME>,

You're right, we charged the wrong amount. The difference is on its way back to you and should show on your statement within a week.
---
Hi <NAME>,

There are two ways to do this. You can either pause your subscription for up to three months, or switch to the smaller plan, which is cheaper. Both options are under Account > Subscription.
---
Hi <NAME>,

Thanks for your message. I have forwarded your feedback to our product team. We do not have a date yet, but I'll let you know when the feature is available.
---
Hi <NAME>,

I'm sorry, but we are not able to change a ticket after the event has started. For the next event, you can choose a seat when you book.
---
Hi <NAME>,

The error usually means the connection was lost for a moment. Please make sure you are online, wait a minute and try again. If you see the same message, send us a screenshot.
---
Hi <NAME>,

No problem at all. I have merged your two accounts, so all your orders are in one place now. You can sign in with either e-mail address.
---
Hi <NAME>,

Yes, that is possible. Open Settings, go to Notifications and turn off the ones you do not want. Changes take effect right away.
---
Hi <NAME>,

Our opening hours are Monday to Friday from 9 am to 6 pm. You can also leave a message at any time and we will call you back the next working day.
---
Hi <NAME>,

I'm very sorry that the cake arrived damaged. We will bake a new one and deliver it tomorrow morning, and of course you will not be charged for it.
---
Hi <NAME>,

To keep your account safe, we can only make this change after a short check. Please reply with your customer number and the postcode on your account.
---
Hi <NAME>,

The warranty covers two years from the date of purchase. Your watch was bought less than a year ago, so the repair is free. Please bring it to any of our shops.
---
Hi <NAME>,

It sounds like the battery is nearly empty. Charge the device for at least two hours before you turn it on again. A full charge takes about four hours.
---
Hi <NAME>,

Thanks for the details. I could not find an order with that number, which probably means it was placed with another e-mail address. Could you check and let me know?
---
Hi <NAME>,

Of course. I have added a note to your order so the driver will call you before delivery. If nobody is home, the parcel goes to the nearest pick-up point.
---
Hi <NAME>,

When you move to a new phone, sign in with the same account and your contacts and photos are copied over. You do not have to set anything up again.
---
Hi <NAME>,

I'm sorry, the course you asked about is already full. I have put you on the waiting list and will write to you as soon as a place becomes free.
---
Hi <NAME>,

Good news: the bug that stopped the export has been fixed in the latest update. Please install it and try again; your files will be exported as before.
---
Hi <NAME>,

Prices depend on the size of the team. For up to five people the basic plan is enough; larger teams usually choose the professional plan, which is billed per person each month.
---
Hi <NAME>,

Thanks for reaching out. The form only accepts files smaller than 10 MB. If your file is larger, you can send it as a link instead.
---
Hallo <NAME>,

vielen Dank für Ihre Nachricht. Es tut mir leid, dass die Lieferung noch nicht angekommen ist. Das Paket ist unterwegs und wird morgen zugestellt.
---
Hallo <NAME>,

Sie können Ihre Bestellung jederzeit in Ihrem Konto ändern. Öffnen Sie dazu Bestellungen und klicken Sie auf Bearbeiten. Das geht, bis das Paket unser Lager verlässt.
---
Hallo <NAME>,

leider können wir den Termin nicht verschieben, aber wir erstatten Ihnen den vollen Betrag. Das Geld ist in wenigen Tagen auf Ihrem Konto.
"""


def generic_replies() -> list[str]:
    """The e-mails above, one text each."""
    return [block.strip() for block in REPLIES.split("\n---\n") if block.strip()]

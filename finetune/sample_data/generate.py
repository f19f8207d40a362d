# ruff: noqa: E501  (data: long literal lines read better unbroken)
"""Writes the bundled sample data set of a fictional product, "Acme Cloud Backup".

Run ``python finetune/sample_data/generate.py`` to rebuild the JSON files beside it; the output
is deterministic. The files use Zendesk's own shapes: ``help_center_articles.json`` is a Help
Center articles response (``{"articles": [...]}``, every locale), ``tickets.json`` an incremental
export (``{"tickets": [...]}``), ``ticket_comments.json`` maps each ticket id to its comments
response (``{"comments": [...]}``), ``users.json`` a users response. The tickets carry planted
personal data (names, e-mails, phones, addresses, a card number, IPs, a reset link with a token),
quoted earlier mails, signatures, internal notes, duplicates, unanswered tickets and tickets in
statuses the export skips, so every filter of ``finetune prepare`` has something to do.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).parent
PRODUCT = "Acme Cloud Backup"
HC = "https://acme-backup.zendesk.com/hc"

AGENTS = [
    {"id": 9001, "name": "Olena Kovalenko", "email": "olena.kovalenko@acme-backup.example", "role": "agent"},
    {"id": 9002, "name": "Marco Bianchi", "email": "marco.bianchi@acme-backup.example", "role": "agent"},
    {"id": 9003, "name": "Priya Nair", "email": "priya.nair@acme-backup.example", "role": "admin"},
]
CUSTOMERS = [
    ("Maria Schmidt", "de"), ("Tom Baker", "en"), ("Aiko Tanaka", "en"), ("Lukas Wagner", "de"),
    ("Sofia Rossi", "en"), ("James O'Connor", "en"), ("Fatima Haddad", "en"), ("Jonas Becker", "de"),
    ("Emily Carter", "en"), ("Mateo Fernández", "en"), ("Ingrid Lindqvist", "en"), ("Kwame Mensah", "en"),
    ("Chloé Dubois", "en"), ("Dmytro Shevchenko", "en"), ("Anna Müller", "de"), ("Rafael Moreira", "en"),
    ("Hannah Schulz", "de"), ("Oliver Hughes", "en"), ("Zoë van Dijk", "en"), ("Noah Kim", "en"),
    ("Leila Ahmadi", "en"), ("Sven Johansson", "en"), ("Grace Okafor", "en"), ("Paul Richter", "de"),
    ("Isabel Ortega", "en"), ("Yusuf Demir", "en"), ("Nina Petrenko", "en"), ("Lars Sørensen", "en"),
]  # fmt: skip

ARTICLES_EN = [
    (
        "Install the desktop app",
        "<p>The desktop app backs up Windows, macOS and Linux computers.</p>"
        "<ol><li>Sign in at <a href='https://app.acme-backup.example'>app.acme-backup.example</a>.</li>"
        "<li>Open <strong>Devices</strong> and click <em>Add device</em>.</li>"
        "<li>Download the installer for your system and run it.</li></ol>"
        "<p>On Linux, install the package from the terminal:</p>"
        "<pre><code>curl -fsSL https://get.acme-backup.example/install.sh | sudo bash\nacme-backup login</code></pre>",
    ),
    (
        "Backup stuck at 99%",
        "<p>A backup that stays at 99% is almost always waiting for a file that another program keeps open "
        "(Outlook PST files, virtual machine disks, databases).</p><ul><li>Close the program that holds the "
        "file, or</li><li>turn on <strong>Volume Shadow Copy</strong> under <em>Settings &gt; Advanced</em> "
        "(Windows) so open files are copied from a snapshot.</li></ul><p>The log line "
        "<code>waiting for file lock</code> names the file.</p>",
    ),
    (
        "Restore files and folders",
        "<p>You can restore single files, folders or a whole device.</p><ol><li>Open the app and click "
        "<strong>Restore</strong>.</li><li>Pick the device and the date of the version you want.</li><li>Tick "
        "the files and choose <em>Restore to original location</em> or a new folder.</li></ol><p>Deleted "
        "files are kept for 30 days on Personal and 90 days on Business. See <a href='" + HC + "/en-us/"
        "articles/360004-Versions-and-retention'>Versions and retention</a>.</p>",
    ),
    (
        "Plans and pricing",
        "<table><tr><th>Plan</th><th>Devices</th><th>Storage</th><th>Price</th></tr><tr><td>Personal</td>"
        "<td>1</td><td>1 TB</td><td>$6/month</td></tr><tr><td>Family</td><td>5</td><td>2 TB</td><td>$12/month"
        "</td></tr><tr><td>Business</td><td>per seat</td><td>5 TB pooled</td><td>$9/seat/month</td></tr>"
        "</table><p>Yearly billing saves two months.</p>",
    ),
    (
        "Refunds and cancellations",
        "<p>You can cancel any time under <strong>Billing &gt; Plan</strong>. Your backups stay available until "
        "the end of the paid period. Yearly plans cancelled within 30 days are refunded in full; refunds reach "
        "your card in 5-10 business days.</p>",
    ),
    (
        "Two-factor authentication",
        "<p>Turn on two-factor authentication under <strong>Profile &gt; Security</strong>. We support "
        "authenticator apps and security keys. Keep your recovery codes: without them a lost phone means a "
        "manual identity check that takes up to 3 business days.</p>",
    ),
    (
        "Private encryption key",
        "<p>With a private encryption key, your files are encrypted before they leave your computer and "
        "<strong>nobody at Acme can decrypt them</strong>. If you lose the key, the backup cannot be restored "
        "and support cannot recover it. Store the key in a password manager.</p>",
    ),
    (
        "Exclude folders and file types",
        "<p>Open <em>Settings &gt; Exclusions</em> to skip folders or file types.</p><ul><li>Folders: click "
        "<strong>Add folder</strong>.</li><li>File types: add patterns such as <code>*.tmp</code> or "
        "<code>*.iso</code>.</li></ul><p>System folders and caches are excluded by default.</p>",
    ),
    (
        "Back up a NAS or network drive",
        "<p>Network drives are supported on the Business plan. Map the share with a drive letter (Windows) or "
        "mount it (macOS, Linux), then add it under <strong>Settings &gt; Sources</strong>. The share must be "
        "reachable when the backup runs.</p>",
    ),
    (
        "Slow uploads and bandwidth",
        "<p>The first backup uploads everything and can take days. Later backups only send changes.</p><ul><li>"
        "Check <em>Settings &gt; Network</em>: the upload limit may be set.</li><li>Pause other large uploads."
        "</li><li>Use a wired connection for the first backup.</li></ul>",
    ),
    (
        "Move to a new computer",
        "<p>Use <strong>Inherit backup</strong> when you install the app on the new computer: it takes over the "
        "old device's backup without uploading everything again. The old device then stops backing up and no "
        "longer counts toward your device limit.</p>",
    ),
    (
        "Mobile app: photo backup",
        "<p>The iOS and Android apps back up photos and videos. Turn on <strong>Camera upload</strong>, and allow "
        "background refresh so uploads continue when the app is closed. On Android, exclude the app from "
        "battery optimisation.</p>",
    ),
]
ARTICLES_DE = {
    0: ("Desktop-App installieren", "<p>Melden Sie sich an, öffnen Sie <strong>Geräte</strong> und klicken "
        "Sie auf <em>Gerät hinzufügen</em>. Laden Sie das Installationsprogramm herunter und starten Sie es.</p>"),
    1: ("Sicherung hängt bei 99 %", "<p>Meist wartet die Sicherung auf eine Datei, die ein anderes Programm "
        "geöffnet hält.</p><ul><li>Schließen Sie das Programm, oder</li><li>aktivieren Sie die "
        "<strong>Volumenschattenkopie</strong> unter <em>Einstellungen &gt; Erweitert</em>.</li></ul>"),
    2: ("Dateien wiederherstellen", "<ol><li>Öffnen Sie die App und klicken Sie auf <strong>Wiederherstellen"
        "</strong>.</li><li>Wählen Sie Gerät und Datum.</li><li>Markieren Sie die Dateien und wählen Sie den "
        "Zielordner.</li></ol>"),
    4: ("Erstattungen und Kündigung", "<p>Sie können jederzeit unter <strong>Abrechnung &gt; Tarif</strong> "
        "kündigen. Jahrestarife, die innerhalb von 30 Tagen gekündigt werden, erstatten wir vollständig.</p>"),
}  # fmt: skip

# Topics: subject variants, question variants, the first answer, optional follow-up exchange.
TOPICS = [
    {
        "subjects": ["Backup stuck at 99%", "Backup never finishes", "Stuck at 99 percent"],
        "questions": [
            "My nightly backup has been stuck at 99% since yesterday evening. I restarted the app twice. "
            "The log says 'waiting for file lock'. What can I do?",
            "The backup of my laptop never gets past 99%. It has been like this for two days now.",
            "Backup shows 99% for hours and then starts over. Log: waiting for file lock on outlook.pst",
        ],
        "answer": "Thanks for the log line, that helps. A backup stuck at 99% is waiting for a file another "
        "program keeps open, here most likely Outlook's PST file. Please close Outlook during the backup, or "
        "turn on Volume Shadow Copy under Settings > Advanced so open files are copied from a snapshot.",
        "follow_up": (
            "I turned on Volume Shadow Copy and it finished overnight. Thanks!",
            "Great to hear! The setting stays on, so future backups will not wait for open files.",
        ),
    },
    {
        "subjects": ["How do I restore a deleted folder?", "Restore files", "Need to get old version back"],
        "questions": [
            "I deleted a folder with invoices last week by mistake. Can I get it back from the backup?",
            "How do I restore a single file to how it looked on Monday?",
            "My colleague overwrote a spreadsheet. Is there a previous version in the backup?",
        ],
        "answer": "Yes, you can get it back. Open the app, click Restore, pick the device and the date before "
        "the change, tick the files or folder and choose Restore to original location. Deleted files are kept "
        "for 30 days on Personal and 90 days on Business.",
    },
    {
        "subjects": ["Charged twice", "Double charge on my card", "Two payments this month"],
        "questions": [
            "I was charged twice for my yearly plan this month. Please refund one of the payments.",
            "My bank statement shows two charges of $72 from Acme Cloud Backup on the same day.",
        ],
        "answer": "Sorry about the double charge. I have refunded the duplicate payment; it reaches your card in "
        "5-10 business days. You do not need to do anything else.",
        "note": "Refund approved by billing. Duplicate caused by the payment retry bug, see ENG-2291.",
    },
    {
        "subjects": ["Cancel subscription", "How to cancel", "Please cancel my plan"],
        "questions": [
            "I don't need the backup any more after this month. How do I cancel?",
            "Please cancel my subscription, I'm switching computers and won't need it.",
        ],
        "answer": "You can cancel any time under Billing > Plan. Your backups stay available until the end of "
        "the paid period. If you bought a yearly plan less than 30 days ago, we refund it in full.",
    },
    {
        "subjects": ["Lost phone, can't log in", "2FA locked out", "New phone, no authenticator codes"],
        "questions": [
            "I lost my phone with the authenticator app and now I can't log in. I don't have the recovery codes.",
            "I got a new phone and the two-factor codes don't work any more. How do I get back in?",
        ],
        "answer": "I'm sorry you're locked out. Without recovery codes we need a manual identity check: reply "
        "with the last four digits of the card on file and the date of your last payment. The check takes up to "
        "3 business days, after which two-factor authentication is reset.",
    },
    {
        "subjects": ["Forgot encryption key", "Lost private key", "Cannot decrypt backup"],
        "questions": [
            "I set a private encryption key two years ago and can't remember it. Can you reset it so I can "
            "restore my files?",
            "The restore asks for my private key and I lost it. Is there any way to recover the backup?",
        ],
        "answer": "I'm very sorry, but with a private encryption key your files are encrypted before they leave "
        "your computer and nobody at Acme can decrypt them or reset the key. If you cannot find it (a password "
        "manager, a printout), the backup cannot be restored. You can start a new backup with a new key.",
    },
    {
        "subjects": ["Exclude a folder", "Don't back up downloads", "Skip ISO files"],
        "questions": [
            "How can I stop the app from backing up my Downloads folder? It's full of installers.",
            "Can I exclude all .iso files? They use most of my storage.",
        ],
        "answer": "Open Settings > Exclusions. Click Add folder to skip a folder like Downloads, or add a "
        "pattern such as *.iso to skip a file type. Files already backed up are removed from the backup after "
        "30 days.",
    },
    {
        "subjects": ["Backup my NAS", "Network drive not backed up", "Synology support?"],
        "questions": [
            "Can I back up my Synology NAS with Acme? The app doesn't show the network drive.",
            "Our mapped network drive Z: is missing from the sources list.",
        ],
        "answer": "Network drives are supported on the Business plan. Map the share with a drive letter on "
        "Windows or mount it on macOS, then add it under Settings > Sources. The share must be reachable when "
        "the backup runs.",
    },
    {
        "subjects": ["Upload very slow", "First backup takes forever", "Slow backup speed"],
        "questions": [
            "My first backup has been running for 3 days and is only at 40%. Is this normal?",
            "Uploads are extremely slow, around 1 Mbit/s, although my connection is 100 Mbit/s.",
        ],
        "answer": "The first backup uploads everything, so it can take days; later backups only send changes. "
        "Please check Settings > Network in case an upload limit is set, pause other large uploads and use a "
        "wired connection until the first backup is done.",
        "follow_up": (
            "The upload limit was set to 1 Mbit/s, no idea why. Much faster now.",
            "Glad it's faster now! Older versions of the app set that limit by default, that's why.",
        ),
    },
    {
        "subjects": ["New computer", "Moving to a new laptop", "Replace old PC"],
        "questions": [
            "I bought a new laptop. How do I move my backup over without uploading everything again?",
            "My old PC died. I installed the app on a new one, but it wants to start a new backup.",
        ],
        "answer": "Choose Inherit backup when the app asks how to set up the new computer. It takes over the old "
        "device's backup without uploading everything again, and the old device no longer counts toward your "
        "device limit.",
    },
    {
        "subjects": ["Photos not uploading on Android", "Camera upload stops", "iPhone photos missing"],
        "questions": [
            "The Android app only uploads photos while it's open. When I close it, nothing happens.",
            "Camera upload on my iPhone stopped a week ago. New photos are not in the backup.",
        ],
        "answer": "Please allow background refresh for the app and, on Android, exclude it from battery "
        "optimisation under Settings > Apps > Acme Backup > Battery. Then camera upload continues while the app "
        "is closed.",
    },
    {
        "subjects": ["Which plan do I need?", "Family plan question", "Price for 3 computers"],
        "questions": [
            "We have three computers at home. Which plan covers all of them and what does it cost?",
            "Is there a plan for a small office with 6 laptops?",
        ],
        "answer": "The Family plan covers up to 5 devices with 2 TB for $12 a month. For an office, the Business "
        "plan costs $9 per seat a month with 5 TB of pooled storage. Yearly billing saves two months on both.",
    },
    {
        "subjects": ["Install on Linux", "Linux client?", "Ubuntu server backup"],
        "questions": [
            "Do you have a client for Ubuntu 22.04? I only see Windows and macOS downloads.",
            "How do I install the backup client on a headless Linux server?",
        ],
        "answer": "Yes. On Linux, run curl -fsSL https://get.acme-backup.example/install.sh | sudo bash and then "
        "acme-backup login. It works without a desktop, so headless servers are fine.",
    },
]
GERMAN_TOPICS = [
    {
        "subjects": ["Sicherung hängt bei 99 %", "Backup wird nicht fertig"],
        "questions": [
            "Meine Sicherung hängt seit gestern bei 99 %. Was kann ich tun?",
            "Das Backup bleibt immer bei 99 % stehen, im Log steht 'waiting for file lock'.",
        ],
        "answer": "Die Sicherung wartet auf eine Datei, die ein anderes Programm geöffnet hält, meist Outlook. "
        "Schließen Sie das Programm oder aktivieren Sie die Volumenschattenkopie unter Einstellungen > Erweitert.",
    },
    {
        "subjects": ["Kündigung", "Abo kündigen"],
        "questions": [
            "Wie kann ich mein Abo kündigen? Ich brauche es ab nächstem Monat nicht mehr.",
            "Bitte kündigen Sie meinen Jahrestarif, ich habe ihn erst vor einer Woche gekauft.",
        ],
        "answer": "Sie können jederzeit unter Abrechnung > Tarif kündigen. Die Sicherungen bleiben bis zum Ende "
        "des bezahlten Zeitraums verfügbar. Jahrestarife, die innerhalb von 30 Tagen gekündigt werden, erstatten "
        "wir vollständig.",
    },
]

# More customers asking the same things in their own words (subject, question), one list per
# topic above, in order: what a help desk sees after a few months. They come after every other
# ticket, with their own random stream, so the tickets above keep their ids and text.
MORE_QUESTIONS = [
    [
        ("Backup at 99% forever", "Every night the backup climbs to 99% and stays there until morning. The log keeps repeating 'waiting for file lock'. Any idea?"),
        ("Backup hangs near the end", "The backup hangs right before it completes, the progress bar shows 99%. I have Outlook open all day, could that matter?"),
        ("99% and no progress", "Since the last update my backup does not finish. It reaches 99% and nothing more happens."),
        ("Backup not completing", "My backup has not completed for a week, it is always stuck at 99 percent. What is blocking it?"),
    ],
    [
        ("Recover deleted files", "I accidentally deleted my Photos folder yesterday. How can I restore it from the backup?"),
        ("Get back an older version", "I saved over an important document this morning. Can I restore the version from last Friday?"),
        ("Restore a folder", "How do I restore a folder that I removed from my desktop two weeks ago?"),
        ("File deleted by mistake", "A file was deleted by mistake on our shared computer. Is it still in the backup and how do I restore it?"),
    ],
    [
        ("Duplicate payment", "I see a duplicate payment for my subscription on my credit card. Can you refund the extra charge?"),
        ("Billed two times", "You billed me two times this month for the same plan. Please refund the second payment."),
        ("Charged double", "My card was charged double for the yearly renewal. I only have one account."),
        ("Refund for second charge", "There are two identical charges from Acme on my statement. Please refund one of them."),
    ],
    [
        ("Cancel my account", "I want to cancel my account at the end of this billing period. Where do I do that?"),
        ("Stop subscription", "How do I stop my subscription? I don't want it to renew next month."),
        ("End my plan", "Please end my plan, we moved to another backup service."),
        ("Cancellation", "I would like to cancel. Will my backups be deleted right away?"),
    ],
    [
        ("Authenticator app gone", "My phone was stolen and the authenticator app was on it. I can't sign in without the code."),
        ("Can't get 2FA code", "I reset my phone and lost the two-factor authentication app. How can I log in now?"),
        ("Locked out of account", "I am locked out because the 2FA code is on my old phone, which is broken."),
        ("Two-factor reset", "Can you reset two-factor authentication on my account? I lost my recovery codes and my phone."),
    ],
    [
        ("Private key forgotten", "I forgot the private encryption key I set up for my backup. Can support reset it?"),
        ("Restore wants encryption key", "The restore asks for an encryption key and I don't remember it. Can you decrypt my files?"),
        ("Lost my key", "I lost the private key for my backup when my old laptop died. Is my data gone?"),
        ("Encryption key reset", "How can I reset the private encryption key? I need files from the backup."),
    ],
    [
        ("Skip a folder", "How do I exclude a folder from the backup? My Downloads folder is huge."),
        ("Exclude file types", "Can I stop the backup from uploading video files like .mkv and .iso?"),
        ("Leave out folders", "Is there a way to leave the Steam games folder out of my backup?"),
        ("Backup too big", "My backup includes lots of installers and ISO images I don't need. How do I exclude them?"),
    ],
    [
        ("Network share backup", "Can Acme back up a network share? My files are on a NAS at home."),
        ("NAS not listed", "My QNAP NAS does not appear as a source in the app. How do I add it?"),
        ("Mapped drive missing", "The mapped network drive on our office PC is not in the list of sources."),
        ("Back up Synology", "We keep our files on a Synology. Is a network drive supported?"),
    ],
    [
        ("Very slow upload", "The backup uploads at less than 1 Mbit/s. My internet is much faster. Why is it so slow?"),
        ("First backup slow", "My first backup started a week ago and is still running. Is that normal?"),
        ("Backup speed", "Backup speed is terrible, it will take a month at this rate. Can I make uploads faster?"),
        ("Upload limit?", "Uploads are slow although nothing else is using the connection. Is there a speed limit somewhere?"),
    ],
    [
        ("Switching laptops", "I am switching to a new laptop. Can I keep my existing backup instead of starting over?"),
        ("Transfer backup to new PC", "How do I transfer my backup to my new computer without uploading everything again?"),
        ("Reinstalled computer", "I replaced my old computer and the app wants to create a new backup. Can it continue the old one?"),
        ("New Mac", "I got a new Mac. What is the best way to move my backup to it?"),
    ],
    [
        ("Android background upload", "Photos only upload when the Android app is open. Can it upload in the background?"),
        ("iPhone camera upload", "My iPhone stopped uploading new photos to the backup. The app is installed and signed in."),
        ("Camera upload not working", "Camera upload does not work when the app is closed. New pictures are missing."),
        ("Phone photos not backed up", "Photos from my phone have not been backed up for two weeks."),
    ],
    [
        ("Plan for 4 computers", "Which plan should I choose for four computers at home, and how much is it?"),
        ("Business plan price", "How much does the Business plan cost for an office with 10 laptops?"),
        ("Compare plans", "What is the difference between the Family and the Business plan?"),
        ("Pricing question", "I have 3 laptops and 1 desktop. What plan covers them and what is the price?"),
    ],
    [
        ("Linux support", "Is there a Linux version of the backup client? I run Debian."),
        ("Headless server", "Can I install Acme on a server without a desktop? It runs Ubuntu."),
        ("Install on Fedora", "How do I install the client on Fedora Linux?"),
        ("Command line install", "Is there a command line installer for Linux servers?"),
    ],
]  # fmt: skip
MORE_GERMAN_QUESTIONS = [
    [
        ("Backup bleibt hängen", "Meine Sicherung bleibt jede Nacht bei 99 % hängen. Outlook ist offen, liegt es daran?"),
        ("Sicherung nicht fertig", "Die Sicherung wird seit einer Woche nicht fertig, sie steht immer bei 99 %."),
    ],
    [
        ("Vertrag beenden", "Ich möchte meinen Vertrag zum Monatsende beenden. Wo mache ich das?"),
        ("Abo beenden", "Wie beende ich mein Abo? Werden meine Sicherungen dann gelöscht?"),
    ],
]  # fmt: skip

GREETINGS = {"en": ["Hi,", "Hello,", "Hi there,", ""], "de": ["Hallo,", "Guten Tag,", ""]}
SIGN_OFFS = {"en": ["Thanks,", "Best regards,", "Cheers,", "Kind regards,"], "de": ["Viele Grüße,", "Danke,"]}
AGENT_OPENERS = {"en": "Hi {first},", "de": "Hallo {first},"}
AGENT_SIGN_OFFS = {
    "en": "Best regards,\n{agent}\nAcme Cloud Backup Support",
    "de": "Viele Grüße,\n{agent}\nAcme Support",
}


def _extras(rng: random.Random, index: int) -> str:
    """Personal data a customer might add to a message."""
    choices = [
        "",
        "",
        f"You can call me on +44 20 7946 {rng.randint(0, 9999):04d} if that's easier.",
        "My account e-mail is different: {}.backup@example.org".format(rng.choice(["mail", "me", "home"])),
        "The computer is at our office, 221B Baker Street, London NW1 6XE.",
        f"Billing address: Hauptstraße {rng.randint(1, 99)}, 10115 Berlin.",
        f"The NAS is at 192.168.{rng.randint(0, 9)}.{rng.randint(2, 250)} and the office IP is 203.0.113.{rng.randint(2, 250)}.",
        f"The reset link I got was https://app.acme-backup.example/reset?token=Qx{index}f9ZkLm2Pw8Rt",
        "In case you need it, the card is 4111 1111 1111 1111.",
        f"Phone: (415) 555-{rng.randint(0, 9999):04d}",
    ]
    return rng.choice(choices)


def _customer_message(rng: random.Random, name: str, lang: str, question: str, index: int) -> str:
    greeting = rng.choice(GREETINGS[lang])
    extra = _extras(rng, index) if lang == "en" else ""
    sign = rng.choice(SIGN_OFFS[lang])
    first = name.split()[0]
    signature = rng.choice([f"{sign}\n{first}", f"{sign}\n{name}", f"--\n{name}\n+49 30 {rng.randint(1000000, 9999999)}",
                            f"{sign}\n{name}\n\nSent from my iPhone"])  # fmt: skip
    parts = [greeting, question, extra, signature]
    return "\n\n".join(part for part in parts if part)


def _agent_message(name: str, lang: str, answer: str, agent: dict) -> str:
    first = name.split()[0]
    opener = AGENT_OPENERS[lang].format(first=first)
    return f"{opener}\n\n{answer}\n\n{AGENT_SIGN_OFFS[lang].format(agent=agent['name'].split()[0])}"


def _quoted(previous: str, name: str, when: datetime) -> str:
    header = f"On {when:%a, %d %b %Y at %H:%M}, {name} <support@acme-backup.example> wrote:"
    return header + "\n" + "\n".join("> " + line for line in previous.split("\n"))


def build() -> dict:
    rng = random.Random(7)
    users = [dict(agent) for agent in AGENTS]
    for index, (name, lang) in enumerate(CUSTOMERS):
        local = name.lower().replace(" ", ".").replace("'", "").replace("ö", "o").replace("ü", "u")
        local = local.replace("é", "e").replace("ø", "o").replace("ë", "e").replace("á", "a")
        users.append(
            {
                "id": 501 + index,
                "name": name,
                "email": f"{local}@example.com",
                "role": "end-user",
                "locale": lang,
            }
        )
    customers = [u for u in users if u["role"] == "end-user"]
    start = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
    tickets: list[dict] = []
    comments: dict[str, list[dict]] = {}
    comment_id = 70_000_000_000

    def add(
        ticket_id: int,
        subject: str,
        requester: dict,
        status: str,
        thread: list[tuple[int, str, bool]],
        when: datetime,
    ) -> None:
        nonlocal comment_id
        rows = []
        for offset, (author, body, public) in enumerate(thread):
            comment_id += 1
            rows.append({"id": comment_id, "type": "Comment", "author_id": author, "body": body, "html_body": "",
                         "plain_body": body, "public": public, "attachments": [],
                         "created_at": (when + timedelta(hours=3 * offset)).strftime("%Y-%m-%dT%H:%M:%SZ")})  # fmt: skip
        updated = when + timedelta(hours=3 * len(thread) + 24)
        tickets.append({
            "url": f"https://acme-backup.zendesk.com/api/v2/tickets/{ticket_id}.json", "id": ticket_id,
            "via": {"channel": "email", "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "updated_at": updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "type": "question", "subject": subject, "raw_subject": subject, "description": thread[0][1],
            "priority": "normal", "status": status, "requester_id": requester["id"], "submitter_id": requester["id"],
            "assignee_id": thread[1][0] if len(thread) > 1 and thread[1][0] > 9000 else None,
            "organization_id": None, "group_id": 360000000042, "tags": [], "custom_fields": [],
            "is_public": True, "generated_timestamp": int(updated.timestamp()),
        })  # fmt: skip
        comments[str(ticket_id)] = rows

    ticket_id = 2001
    when = start
    topics = [(topic, "en") for topic in TOPICS] + [(topic, "de") for topic in GERMAN_TOPICS]
    for topic_index, (topic, lang) in enumerate(topics):
        for variant, question in enumerate(topic["questions"]):
            pool = [c for c in customers if c["locale"] == lang] or customers
            requester = pool[(topic_index * 3 + variant) % len(pool)]
            agent = AGENTS[(topic_index + variant) % len(AGENTS)]
            first_message = _customer_message(rng, requester["name"], lang, question, ticket_id)
            answer = _agent_message(requester["name"], lang, topic["answer"], agent)
            thread = [(requester["id"], first_message, True)]
            if topic.get("note"):
                thread.append((agent["id"], topic["note"], False))
            thread.append((agent["id"], answer, True))
            if topic.get("follow_up") and variant == 0:
                reply, closing = topic["follow_up"]
                thread.append((requester["id"], reply + "\n\n" + _quoted(answer, agent["name"], when), True))
                thread.append((agent["id"], _agent_message(requester["name"], lang, closing, agent), True))
            status = "closed" if variant % 2 else "solved"
            add(
                ticket_id,
                topic["subjects"][variant % len(topic["subjects"])],
                requester,
                status,
                thread,
                when,
            )
            ticket_id += 1
            when += timedelta(hours=17)
    # The same customer sending the same question twice (an exact duplicate after cleaning).
    original = next(t for t in tickets if t["subject"] == TOPICS[0]["subjects"][0])
    requester = next(u for u in users if u["id"] == original["requester_id"])
    repeat = [(c["author_id"], c["body"], c["public"]) for c in comments[str(original["id"])][:2]]
    add(ticket_id, original["subject"], requester, "solved", repeat, when)
    ticket_id += 1
    when += timedelta(hours=5)
    # Near duplicates: the first question of a topic sent again, a word or two changed.
    for topic_index, topic in enumerate(TOPICS[:4]):
        first_ticket = next(t for t in tickets if t["subject"] == topic["subjects"][0])
        requester = next(u for u in users if u["id"] == first_ticket["requester_id"])
        agent = AGENTS[topic_index % len(AGENTS)]
        original_question = topic["questions"][0]
        changed = original_question.replace(" I ", " we ", 1).rstrip(".?") + "? Please help."
        question = comments[str(first_ticket["id"])][0]["body"].replace(original_question, changed)
        thread = [
            (requester["id"], question, True),
            (agent["id"], _agent_message(requester["name"], "en", topic["answer"], agent), True),
        ]
        add(ticket_id, topic["subjects"][0], requester, "solved", thread, when)
        ticket_id += 1
        when += timedelta(hours=9)
    # Unanswered: the customer solved it alone; only an internal note from the agent.
    for topic in TOPICS[4:7]:
        requester = customers[rng.randrange(len(customers))]
        thread = [
            (
                requester["id"],
                _customer_message(rng, requester["name"], "en", topic["questions"][-1], ticket_id),
                True,
            ),
            (requester["id"], "Never mind, I found it in the help centre. You can close this.", True),
            (AGENTS[0]["id"], "Customer solved it alone; closing. Their card ends in 4242.", False),
        ]
        add(ticket_id, topic["subjects"][-1], requester, "solved", thread, when)
        ticket_id += 1
        when += timedelta(hours=11)
    # Statuses the export skips: still open, pending, and a deleted ticket.
    for status in ("open", "pending", "deleted", "new"):
        requester = customers[rng.randrange(len(customers))]
        thread = [
            (
                requester["id"],
                f"Question in a ticket that is {status}: my backup shows an error 0x80070005.",
                True,
            )
        ]
        add(ticket_id, f"Error 0x80070005 ({status})", requester, status, thread, when)
        ticket_id += 1
        when += timedelta(hours=7)

    # The same topics asked again in other words (their own random stream: the tickets above stay as they are).
    more_rng = random.Random(11)
    more = [(t, q, "en") for t, q in zip(TOPICS, MORE_QUESTIONS, strict=True)]
    more += [(t, q, "de") for t, q in zip(GERMAN_TOPICS, MORE_GERMAN_QUESTIONS, strict=True)]
    for topic_index, (topic, asked, lang) in enumerate(more):
        for variant, (subject, question) in enumerate(asked):
            pool = [c for c in customers if c["locale"] == lang] or customers
            requester = pool[(topic_index * 5 + variant + 1) % len(pool)]
            agent = AGENTS[(topic_index + variant + 1) % len(AGENTS)]
            first_message = _customer_message(more_rng, requester["name"], lang, question, ticket_id)
            thread = [
                (requester["id"], first_message, True),
                (agent["id"], _agent_message(requester["name"], lang, topic["answer"], agent), True),
            ]
            add(ticket_id, subject, requester, "closed" if variant % 2 else "solved", thread, when)
            ticket_id += 1
            when += timedelta(hours=13)

    articles = []
    updated = "2025-01-02T10:00:00Z"
    for index, (title, body) in enumerate(ARTICLES_EN):
        articles.append(_article(360_001 + index, title, body, "en-us", updated))
    for index, (title, body) in ARTICLES_DE.items():
        articles.append(_article(360_001 + index, title, body, "de", updated))
    return {
        "help_center_articles": {"articles": articles, "next_page": None, "count": len(articles)},
        "tickets": {"tickets": tickets, "after_cursor": None, "end_of_stream": True},
        "ticket_comments": {key: {"comments": rows} for key, rows in comments.items()},
        "users": {"users": users},
    }


def _article(article_id: int, title: str, body: str, locale: str, updated: str) -> dict:
    slug = "-".join(title.split())
    return {
        "id": article_id, "url": f"https://acme-backup.zendesk.com/api/v2/help_center/{locale}/articles/{article_id}.json",
        "html_url": f"{HC}/{locale}/articles/{article_id}-{slug}", "author_id": 9003, "draft": False,
        "section_id": 360_000_100, "created_at": updated, "updated_at": updated, "edited_at": updated,
        "name": title, "title": title, "body": body, "source_locale": "en-us", "locale": locale,
        "outdated": False, "label_names": [],
    }  # fmt: skip


def main() -> None:
    data = build()
    for name, content in data.items():
        (HERE / f"{name}.json").write_text(
            json.dumps(content, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
        print(f"wrote {name}.json")


if __name__ == "__main__":
    main()

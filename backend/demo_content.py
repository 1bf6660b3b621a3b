"""What the demo forum starts with: categories, people and conversations about home brewing and running a
small community forum. Written for this project (not taken from any dataset). Data only; the seeding
is in backend.demo."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["member", "moderator"]


@dataclass(frozen=True)
class DemoCategory:
    name: str
    slug: str
    description: str
    position: int
    qa_mode: bool = False


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: Role


@dataclass(frozen=True)
class DemoReply:
    author: str  # a DemoUser's username, or "admin" for the demo admin
    body: str
    reactions: tuple[tuple[str, str], ...] = ()  # (username, reaction type)
    solution: bool = False  # marked as the solution by the thread's author (Q&A categories)


@dataclass(frozen=True)
class DemoThread:
    category: str
    author: str
    title: str
    body: str
    replies: tuple[DemoReply, ...] = field(default_factory=tuple)


CATEGORIES: tuple[DemoCategory, ...] = (
    DemoCategory("Announcements", "announcements", "News about this community and how it is run.", 0),
    DemoCategory("General", "general", "Anything about brewing that does not fit elsewhere.", 1),
    DemoCategory(
        "Help & Questions",
        "help-questions",
        "Ask a question; mark the reply that solved it so the next person finds it.",
        2,
        qa_mode=True,
    ),
    DemoCategory("Show and Tell", "show-and-tell", "Recipes, batches, gear and tools you made.", 3),
)

USERS: tuple[DemoUser, ...] = (
    DemoUser("maltmonk", "moderator"),
    DemoUser("hopsandhearth", "member"),
    DemoUser("wortwhisperer", "member"),
)

THREADS: tuple[DemoThread, ...] = (
    DemoThread(
        category="announcements",
        author="admin",
        title="Welcome to the Demo Community",
        body=(
            "Hello and welcome! This forum is for people who brew at home, from first-time kit "
            "brewers to folks with a three-vessel setup in the garage.\n\n"
            "A few places to start:\n\n"
            "- **General** for stories, styles and the odd tangent\n"
            "- **Help & Questions** when a batch misbehaves (mark the answer that fixed it)\n"
            "- **Show and Tell** for recipes, photos and tools you built\n\n"
            "Introduce yourself below, and say what you have in the fermenter right now."
        ),
        replies=(
            DemoReply(
                "maltmonk",
                "Glad to be here. I moderate, so ping me if something looks off. Currently fermenting: "
                "a dry Irish stout, day four.",
                reactions=(("hopsandhearth", "like"), ("admin", "like")),
            ),
            DemoReply(
                "hopsandhearth",
                "Hi all! Second year of brewing, mostly pale ales. Nothing in the fermenter this week "
                "because I am finally cleaning the kegerator.",
            ),
            DemoReply("wortwhisperer", "Hello from a very small apartment: one-gallon batches on the stove."),
        ),
    ),
    DemoThread(
        category="announcements",
        author="maltmonk",
        title="Community guidelines, short version",
        body=(
            "We keep it simple:\n\n"
            "1. Be kind, especially to beginners. Everyone dumped a batch once.\n"
            "2. When you give advice, say what it is based on: your own batches, a book, a study.\n"
            "3. No selling in threads; a link to your own blog post is fine when it answers the question.\n"
            "4. Flag posts that break these rules instead of arguing with them.\n\n"
            "Moderators may edit titles to make threads easier to find. Edits keep their history."
        ),
        replies=(
            DemoReply(
                "wortwhisperer",
                'Point 2 is great. Half the advice online is "my uncle said".',
                reactions=(("maltmonk", "laugh"), ("hopsandhearth", "upvote")),
            ),
            DemoReply("admin", "Thanks for writing these up. Pinned in spirit."),
        ),
    ),
    DemoThread(
        category="general",
        author="hopsandhearth",
        title="What got you into home brewing?",
        body=(
            "For me it was a friend's birthday: we brewed a kit together, it came out drinkable, and "
            "I was hooked on the process more than the beer. What was your first batch?"
        ),
        replies=(
            DemoReply(
                "maltmonk",
                "A brown ale from a book I found at a library sale. The recipe was fine; my sanitation "
                "was not. The second batch was much better.",
            ),
            DemoReply(
                "wortwhisperer",
                "Curiosity about yeast. I started with cider because it needs almost no equipment, "
                "then moved to beer when I wanted more control over flavor.",
                reactions=(("hopsandhearth", "like"),),
            ),
            DemoReply(
                "admin",
                "Cheaper than buying craft beer, I told myself. That argument did not survive the "
                "first equipment order.",
                reactions=(("maltmonk", "laugh"), ("wortwhisperer", "laugh")),
            ),
        ),
    ),
    DemoThread(
        category="general",
        author="wortwhisperer",
        title="Beer styles for colder evenings",
        body=(
            "The nights are getting longer and I want to plan a batch that is ready by midwinter. "
            "Something malty, not too strong. Ideas?"
        ),
        replies=(
            DemoReply(
                "hopsandhearth",
                "A Scottish export ale is perfect for that: caramel notes, low bitterness, around "
                "5% ABV. @maltmonk brewed a great one last year, maybe he will share the recipe.",
            ),
            DemoReply(
                "maltmonk",
                "Happy to. The short version: mostly pale malt, a little crystal and a pinch of "
                "roasted barley for color, a clean ale yeast fermented cool. I will post the full "
                "recipe in Show and Tell.",
                reactions=(("wortwhisperer", "upvote"),),
            ),
            DemoReply(
                "wortwhisperer",
                "That sounds exactly right. Adding it to the plan, thanks both.",
            ),
        ),
    ),
    DemoThread(
        category="help-questions",
        author="wortwhisperer",
        title="Fermentation stopped after two days: is it stuck?",
        body=(
            "I brewed a 1-gallon amber ale on Saturday. Original gravity was 1.052, the airlock "
            "bubbled hard for two days and now it is completely quiet. Today the hydrometer reads "
            "1.020. Is it stuck, and what should I do?"
        ),
        replies=(
            DemoReply(
                "hopsandhearth",
                "Airlock activity is not a reliable sign: small batches often finish the vigorous "
                "phase in two days. 1.020 is a bit high for an amber though.",
            ),
            DemoReply(
                "maltmonk",
                "Check the temperature first. If the room dropped below about 17 °C the yeast may "
                "have slowed down. Move the fermenter somewhere around 20 °C, swirl it gently to "
                "rouse the yeast, and take another reading in three days. If the gravity has not "
                "moved, then it is stuck and you can pitch a fresh packet of a neutral ale yeast.",
                reactions=(("wortwhisperer", "upvote"), ("hopsandhearth", "upvote"), ("admin", "like")),
                solution=True,
            ),
            DemoReply(
                "wortwhisperer",
                "It was sitting by a drafty window at 15 °C. Moved it, swirled it, and three days "
                "later it reads 1.012. Marking the answer, thank you!",
            ),
        ),
    ),
    DemoThread(
        category="help-questions",
        author="hopsandhearth",
        title="How do you sanitize bottles without a dishwasher?",
        body=(
            "I am bottling my next batch and do not have a dishwasher. What is your routine for "
            "about 40 bottles that does not take all evening?"
        ),
        replies=(
            DemoReply(
                "wortwhisperer",
                "Rinse each bottle right after you pour it, so nothing dries inside. On bottling day "
                "I only need a no-rinse sanitizer: fill a bucket, dunk, drain on a bottle tree.",
            ),
            DemoReply(
                "admin",
                "Same here. A bottle tree and a vinyl bottle washer that squirts sanitizer up into the "
                "bottle cut my time in half.",
                reactions=(("hopsandhearth", "like"),),
            ),
        ),
    ),
    DemoThread(
        category="show-and-tell",
        author="maltmonk",
        title="A tiny ABV calculator",
        body=(
            "I got tired of looking up the formula every brew day, so here is the one I use. It is "
            "the common approximation and is good enough for beers under about 8%:\n\n"
            "```python\n"
            "def abv(original_gravity: float, final_gravity: float) -> float:\n"
            '    """Alcohol by volume, in percent."""\n'
            "    return (original_gravity - final_gravity) * 131.25\n"
            "\n"
            "\n"
            'print(f"{abv(1.052, 1.012):.1f}% ABV")  # 5.3% ABV\n'
            "```\n\n"
            "For stronger beers the alternative formula is more accurate; happy to post it too."
        ),
        replies=(
            DemoReply(
                "wortwhisperer",
                "Used it on my amber: 5.3%, same as the app on my phone. Nice.",
                reactions=(("maltmonk", "like"),),
            ),
            DemoReply(
                "hopsandhearth",
                "Please do post the other formula, I have a barleywine planned for the spring.",
            ),
        ),
    ),
    DemoThread(
        category="show-and-tell",
        author="hopsandhearth",
        title="First all-grain batch: a hazy pale ale",
        body=(
            "After two years of extract brewing I finally did a full mash. Recipe for 20 liters:\n\n"
            "| Ingredient | Amount |\n"
            "|---|---|\n"
            "| Pale malt | 4.0 kg |\n"
            "| Wheat malt | 0.8 kg |\n"
            "| Flaked oats | 0.5 kg |\n"
            "| Citra (dry hop) | 100 g |\n\n"
            "Mashed at 67 °C for an hour. It came out soft and juicy, a bit less hazy than I hoped."
        ),
        replies=(
            DemoReply(
                "maltmonk",
                "Congratulations on going all-grain! For more haze, try more oats and dry hopping "
                "while fermentation is still active.",
                reactions=(("hopsandhearth", "upvote"),),
            ),
            DemoReply(
                "admin",
                "That table is exactly how a recipe should be shared. Looks delicious.",
                reactions=(("hopsandhearth", "like"), ("wortwhisperer", "like")),
            ),
            DemoReply(
                "wortwhisperer",
                "How long did the whole brew day take you? I am trying to decide whether to make the jump.",
            ),
        ),
    ),
)


# --- agent scenes (issue 13): seeded after the conversations above, with the agents installed -----------

# A long thread with structure (a table, a list, code, a quote) the summary agent gets asked to summarize.
LONG_THREAD = DemoThread(
    category="general",
    author="hopsandhearth",
    title="Planning a club brew day: kettle, yeast and schedule",
    body=(
        "Our club wants to brew one big batch together next month. Which kettle should we use, which yeast, "
        "and how do we split the work? I would like us to decide by Friday."
    ),
    replies=(
        DemoReply(
            "maltmonk",
            "Here is what we have access to:\n\n| kettle | volume | heat |\n|---|---|---|\n"
            "| Club kettle | 60 litres | gas |\n| My kettle | 30 litres | electric |\n\n"
            "The club kettle is the only one big enough for a shared batch.",
        ),
        DemoReply(
            "wortwhisperer",
            "> Which kettle should we use\n\nThe club kettle, no question. For yeast I suggest:\n\n"
            "- US-05 for a clean pale ale\n- S-04 if people prefer an English bitter\n\n"
            "US-05 is more forgiving if the garage gets warm.",
            reactions=(("hopsandhearth", "like"),),
        ),
        DemoReply(
            "admin",
            "For the schedule, something like this works:\n\n1. Mash in at 9:00.\n2. Boil by 11:00.\n"
            "3. Chill and pitch by 13:30.\n\nWe need two people on cleaning the whole day.",
        ),
        DemoReply(
            "hopsandhearth",
            "Thanks all. How many people can the club kettle serve if everyone takes five litres home?",
        ),
        DemoReply(
            "maltmonk",
            "About ten people: sixty litres minus losses to trub and the boil leaves a little over fifty.",
            reactions=(("hopsandhearth", "upvote"),),
        ),
        DemoReply(
            "wortwhisperer",
            "I can bring a spare chiller:\n\n```\nimmersion chiller, 15 m copper, 1/2 inch hose fittings\n```\n\n"
            "It halves the cooling time with the club kettle.",
        ),
        DemoReply(
            "hopsandhearth",
            "We decided to go with the club kettle and US-05, mash in at 9:00. Who can take the cleaning shift?",
        ),
    ),
)

# A question nobody answers: the routing agent asks the member with the accepted answers in this category.
UNANSWERED = DemoThread(
    category="help-questions",
    author="hopsandhearth",
    title="My cider smells of sulfur after a week: should I worry?",
    body=(
        "The cider has been fermenting for a week at 18 °C with a wine yeast and it smells of rotten eggs. "
        "Is the batch ruined, or will it clear up on its own?"
    ),
)

# A brand-new account posting spam: the moderation agent flags it with its reasons, its hide waits.
SPAMMER = "promo_deals_4u"
SPAM_BODY = (
    "Congratulations!!! You have been selected to win a FREE $500 gift card. Claim it now before it expires: "
    "http://bit.ly/free-gift-4u?ref=club or WhatsApp me: +44 7700 900123"
)

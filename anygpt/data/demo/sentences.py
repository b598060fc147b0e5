"""A small English grammar for the demo speech: scene descriptions, numbers, actions, everyday phrases, questions.

Sentences are lowercase words only (numbers spelled out), so the transcript is exactly what espeak says and the
LibriSpeech-style uppercase transcript is ``text.upper()``. The vocabulary is several hundred words: an ASR model must
really recognise words, not memorise a handful of sentences.
"""

from __future__ import annotations

import numpy as np

from anygpt.data.demo.images import COLOURS, NUMBER_WORDS, SHAPES, shape_noun

NAMES = (
    "anna", "ben", "clara", "david", "emma", "frank", "grace", "henry", "isabel", "jack", "kate", "leo", "maria",
    "nathan", "olivia", "peter", "rosa", "sam", "thomas", "victor", "william", "zoe", "my brother", "my sister",
    "our neighbour", "the teacher", "the doctor", "the old farmer", "a little girl", "the driver",
)
PAST_VERBS = (
    "carried", "painted", "opened", "closed", "cleaned", "found", "lost", "bought", "sold", "moved", "washed",
    "dropped", "picked up", "fixed", "broke", "brought", "wrapped", "hid", "counted", "borrowed", "returned",
    "repaired", "filled", "emptied", "packed", "watched", "noticed", "ordered", "delivered", "measured",
)
OBJECTS = (
    "the heavy box", "a wooden chair", "the blue bicycle", "an old letter", "the kitchen table", "a basket of apples",
    "the garden gate", "a silver key", "the red umbrella", "a cup of tea", "the yellow kite", "a pair of shoes",
    "the small window", "a bag of oranges", "the green bottle", "a thick book", "the broken clock", "a warm blanket",
    "the paper map", "a glass of milk", "the brown suitcase", "a bunch of flowers", "the metal ladder",
    "a loaf of bread", "the purple scarf", "a bucket of water", "the camera", "a bowl of soup", "the piano", "a pencil",
)
PLACES = (
    "to the kitchen", "into the garden", "near the station", "behind the house", "at the market", "in the library",
    "on the bridge", "by the river", "under the stairs", "across the street", "in the park", "at the harbour",
    "on the top shelf", "next to the door", "inside the barn", "at the school", "in the village", "on the hill",
    "by the lake", "at the bakery",
)
TIMES = (
    "yesterday", "this morning", "last night", "on monday", "on tuesday", "on wednesday", "on thursday", "on friday",
    "on saturday", "on sunday", "after lunch", "before dinner", "at noon", "in the evening", "last week", "early today",
    "in january", "in march", "in july", "in october",
)
EVERYDAY = (
    "good morning how are you today", "please close the door behind you", "could you pass me the salt please",
    "thank you very much for your help", "i will call you back later", "the bus leaves in ten minutes",
    "do not forget your umbrella", "it is raining again this afternoon", "let us meet at the corner cafe",
    "i would like a cup of coffee", "where did you put my glasses", "the shop closes at six tonight",
    "we are going to the beach tomorrow", "turn left at the next traffic light", "please speak a little louder",
    "my phone battery is almost empty", "the soup is too hot to eat", "can you help me carry these bags",
    "the meeting starts at nine sharp", "have a safe trip home", "i think we are lost", "the weather is lovely today",
    "please wash your hands before dinner", "what time does the train arrive", "the children are playing outside",
    "i forgot my keys at the office", "the library is very quiet", "would you like some more cake",
    "the dog is sleeping by the fire", "let me know when you are ready", "the tickets are sold out",
    "please write your name here", "the garden needs more water", "see you next week",
    "the film was better than the book", "my favourite season is autumn",
)
WEATHER = ("sunny", "cloudy", "windy", "rainy", "foggy", "snowy", "stormy", "cold", "warm", "hot")
CITIES = ("london", "paris", "boston", "sydney", "madrid", "berlin", "dublin", "toronto", "chicago", "vienna")
ANIMALS = {"spider": 8, "dog": 4, "cat": 4, "bird": 2, "horse": 4, "ant": 6, "duck": 2, "cow": 4, "bee": 6, "snake": 0}
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
    "december",
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_ORDINALS = (
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth", "eleventh",
    "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth", "nineteenth",
    "twentieth",
)


def number_to_words(n: int) -> str:
    """0..9999 spelled out the way espeak reads it ("three hundred and twelve")."""
    if not 0 <= n < 10000:
        raise ValueError(f"number {n} out of range 0..9999")
    if n < 10:
        return NUMBER_WORDS[n]
    if n < 20:
        return _TEENS[n - 10]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + NUMBER_WORDS[n % 10])
    if n < 1000:
        rest = n % 100
        return NUMBER_WORDS[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_to_words(rest))
    rest = n % 1000
    head = number_to_words(n // 1000) + " thousand"
    if rest == 0:
        return head
    return head + (" and " if rest < 100 else " ") + number_to_words(rest)


def pick(rng: np.random.Generator, options):
    """One of ``options``, drawn with ``rng``."""
    return options[int(rng.integers(len(options)))]


def _scene_sentence(rng: np.random.Generator) -> str:
    count = int(rng.integers(1, 8))
    colour, shape = pick(rng, list(COLOURS)), pick(rng, SHAPES)
    size = pick(rng, ("small", "large", "tiny", "big", "little", "huge"))
    other = f"{pick(rng, list(COLOURS))} {pick(rng, SHAPES)}"
    rel = pick(rng, ("next to", "above", "below", "to the left of", "to the right of", "near", "behind"))
    det = "a" if count == 1 else NUMBER_WORDS[count]
    verb = "is" if count == 1 else "are"
    nouns = shape_noun(shape, count)
    return pick(rng, (
        f"there {verb} {det} {size} {colour} {nouns} {rel} a {other}",
        f"i can see {det} {colour} {nouns} on a {pick(rng, list(COLOURS))} background",
        f"draw {det} {size} {colour} {nouns} in the {pick(rng, ('middle', 'corner', 'top'))}",
        f"the {colour} {shape} is {rel} the {other}",
    ))


def _number_sentence(rng: np.random.Generator) -> str:
    a, b = int(rng.integers(2, 100)), int(rng.integers(1, 13))
    return pick(rng, (
        f"the number is {number_to_words(int(rng.integers(0, 10000)))}",
        f"it costs {number_to_words(a)} dollars and {number_to_words(int(rng.integers(1, 100)))} cents",
        f"the train leaves at {number_to_words(b)} {number_to_words(int(rng.integers(10, 60)))}",
        f"my birthday is on the {pick(rng, _ORDINALS)} of {pick(rng, MONTHS)}",
        f"please call me at {' '.join(NUMBER_WORDS[int(d)] for d in rng.integers(0, 10, size=5))}",
        f"we need {number_to_words(a)} chairs for the party",
        f"room {number_to_words(int(rng.integers(100, 1000)))} is on the {pick(rng, _ORDINALS[:10])} floor",
        f"the year was {number_to_words(int(rng.integers(1900, 2030)))}",
    ))


def _action_sentence(rng: np.random.Generator) -> str:
    who, verb, what = pick(rng, NAMES), pick(rng, PAST_VERBS), pick(rng, OBJECTS)
    if rng.random() < 0.5:
        return f"{who} {verb} {what} {pick(rng, PLACES)} {pick(rng, TIMES)}"
    return f"{pick(rng, TIMES)} {who} {verb} {what} {pick(rng, PLACES)}"


def _question_sentence(rng: np.random.Generator) -> str:
    return pick(rng, (
        f"where did {pick(rng, NAMES)} put {pick(rng, OBJECTS)}",
        f"what is the weather like in {pick(rng, CITIES)} {pick(rng, TIMES)}",
        f"why was {pick(rng, NAMES)} {pick(rng, PLACES)} {pick(rng, TIMES)}",
        f"how many {shape_noun(pick(rng, SHAPES), 2)} are in the picture",
        f"did you see {pick(rng, OBJECTS)} {pick(rng, PLACES)}",
    ))


def sentence(rng: np.random.Generator) -> str:
    """One sentence from a mix of the grammar's categories (about 4 to 14 words)."""
    kind = rng.random()
    if kind < 0.25:
        return _scene_sentence(rng)
    if kind < 0.45:
        return _number_sentence(rng)
    if kind < 0.75:
        return _action_sentence(rng)
    if kind < 0.88:
        return _question_sentence(rng)
    return pick(rng, EVERYDAY)


def question_answer(rng: np.random.Generator) -> tuple[str, str]:
    """A spoken question with its one correct answer (arithmetic, calendar, counting, animals, weather)."""
    kind = int(rng.integers(0, 6))
    if kind < 2:  # a sum or a product
        low, high, word = ((1, 50, "plus"), (2, 13, "times"))[kind]
        a, b = int(rng.integers(low, high)), int(rng.integers(low, high))
        question = f"{number_to_words(a)} {word} {number_to_words(b)}"
        return f"what is {question}", f"{question} is {number_to_words(a + b if kind == 0 else a * b)}"
    if kind == 2:
        d = int(rng.integers(0, 7))
        return f"what day comes after {DAYS[d]}", f"{DAYS[(d + 1) % 7]} comes after {DAYS[d]}"
    if kind == 3:
        m = int(rng.integers(0, 12))
        return f"which month comes before {MONTHS[m]}", f"{MONTHS[m - 1]} comes before {MONTHS[m]}"
    if kind == 4:
        animal = pick(rng, list(ANIMALS))
        legs = ANIMALS[animal]
        answer = "a snake has no legs" if legs == 0 else f"a {animal} has {number_to_words(legs)} legs"
        return f"how many legs does a {animal} have", answer
    city, weather = pick(rng, CITIES), pick(rng, WEATHER)
    coat = weather in ("cold", "windy", "rainy", "snowy", "stormy", "foggy")
    return (f"i heard it is {weather} in {city} should i take a coat",
            "yes take a warm coat" if coat else f"no you will not need a coat if it is {weather}")

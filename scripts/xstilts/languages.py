"""Official XTREME and XTREME-R language lists, in the order of google-research/xtreme evaluate.py.

These lists define which languages a task is evaluated on; a preset may restrict them further
with its ``languages`` filter (the embedded demo only generates a handful of languages).
"""

XTREME_TASK2LANGS: dict[str, list[str]] = {
    "pawsx": "de en es fr ja ko zh".split(),
    "xnli": "ar bg de el en es fr hi ru sw th tr ur vi zh".split(),
    "panx": (
        "ar he vi id jv ms tl eu ml ta te af nl en de el bn hi mr ur fa fr it pt es bg ru ja ka ko "
        "th sw yo my zh kk tr et fi hu"
    ).split(),
    "udpos": (
        "af ar bg de el en es et eu fa fi fr he hi hu id it ja kk ko mr nl pt ru ta te th tl tr ur "
        "vi yo zh"
    ).split(),
    "bucc2018": "de fr ru zh".split(),
    "tatoeba": (
        "ar he vi id jv tl eu ml ta te af nl de el bn hi mr ur fa fr it pt es bg ru ja ka ko th sw "
        "zh kk tr et fi hu"
    ).split(),
    "xquad": "en es de el ru tr ar vi th zh hi".split(),
    "mlqa": "en es de ar hi vi zh".split(),
    "tydiqa": "en ar bn fi id ko ru sw te".split(),
}

XTREME_R_TASK2LANGS: dict[str, list[str]] = {
    "xnli": XTREME_TASK2LANGS["xnli"],
    "panx": XTREME_TASK2LANGS["panx"] + "qu pl uk az lt pa gu ro".split(),
    "udpos": XTREME_TASK2LANGS["udpos"] + "lt pl uk wo ro".split(),
    "tatoeba": XTREME_TASK2LANGS["tatoeba"] + "az lt pl uk ro".split(),
    "xcopa": "et ht id it qu sw ta th tr vi zh".split(),
    "lareqa": [],
    "mewslix": "ar de en es fa ja pl ro ta tr uk".split(),
    "xquad": XTREME_TASK2LANGS["xquad"] + ["ro"],
    "mlqa": XTREME_TASK2LANGS["mlqa"],
    "tydiqa": XTREME_TASK2LANGS["tydiqa"],
}

#: UD-POS languages that XTREME evaluates on test only (no dev split exists for them).
UDPOS_TEST_ONLY = ("kk", "th", "tl", "yo")

"""Where the paper preset's data and model come from: every upstream file, pinned.

Each *source* is one download job (``rules/data.smk: download_source``) that fetches a list of
files into ``resources/downloads/<source>/``; every file is pinned by URL + sha256 + size and is
verified before it is used (``xstilts.download``). Each canonical dataset of ``tasks.DATASETS``
is converted from one source (``xstilts.converters``), except CCG: CCGbank is licensed by the
LDC and is read from a local copy (``data.download.ccgbank``).

Where the pins come from (nothing here is typed in from memory):

* ``HF_DATASETS``: the ``download_checksums`` recorded in the ``dataset_infos.json`` files of the
  legacy Hugging Face loading scripts (huggingface/datasets, last commit before the scripts
  moved to the hub). They are the files jiant and XTREME download.
* Tatoeba and XQuAD: the same records, and re-verified byte for byte against the upstream git
  repositories at the commits in their URLs (so the URLs are immutable too).

The XLM-R revision is a Hugging Face hub commit; ``download.verify_hub_files`` checks every
downloaded file against the hub's metadata for that commit (LFS sha256 or git blob id).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

#: Provenance of the sha256/size pins (repository@commit path).
HF_DATASETS = "huggingface/datasets@d7dfbc83d68e87ba002c5eb2555f7a932e59038a"
LASER_COMMIT = "74bc6ae7ffb7cba670fe0f428d0ede9f666fb821"
XQUAD_COMMIT = "60cac411649156efb6aab9dd4c9cde787a2c0345"
#: Where the COPA and Social IQa pins were read: the same legacy loading scripts' records, at the
#: commit whose dataset_infos.json files were read (not re-downloaded here: no network).
HF_DATASETS_REASONING = "huggingface/datasets@040102f100964a33fd334e2695f1c493fa6b92db"
#: cambridgeltl/xcopa HEAD (2021-02-03, the last change to data/). XTREME-R's download script
#: fetches data/<lang>/{val,test}.<lang>.jsonl from master; the pins below are the sha256 and
#: size of those blobs at this commit, computed from a clone of the repository.
XCOPA_COMMIT = "e2e9d7f105a758ee869cd13e0fe251ef93a29840"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_URL = re.compile(r"^(https?|file)://")


@dataclass(frozen=True)
class RemoteFile:
    """One upstream file: saved as ``name``, fetched from ``url``, verified by sha256 and size."""

    name: str
    url: str
    #: None = unpinned: the download refuses it unless the user supplies a checksum.
    sha256: str | None
    size: int | None = None


@dataclass(frozen=True)
class DownloadSource:
    """A group of upstream files fetched by one download job."""

    name: str
    files: tuple[RemoteFile, ...]
    #: Where the pins were verified (repository@commit path).
    pinned_from: str
    homepage: str


def _infos(name: str) -> str:
    return f"{HF_DATASETS} datasets/{name}/dataset_infos.json"


def _files(base: str, pins: dict[str, tuple[str, int]]) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(name, base + name, sha, size) for name, (sha, size) in pins.items())


# Tatoeba: LASER's three-letter codes of XTREME's 36 languages -> XTREME's two-letter codes.
TATOEBA_CODES = {
    "afr": "af", "ara": "ar", "ben": "bn", "bul": "bg", "cmn": "zh", "deu": "de", "ell": "el",
    "est": "et", "eus": "eu", "fin": "fi", "fra": "fr", "heb": "he", "hin": "hi", "hun": "hu",
    "ind": "id", "ita": "it", "jav": "jv", "jpn": "ja", "kat": "ka", "kaz": "kk", "kor": "ko",
    "mal": "ml", "mar": "mr", "nld": "nl", "pes": "fa", "por": "pt", "rus": "ru", "spa": "es",
    "swh": "sw", "tam": "ta", "tel": "te", "tgl": "tl", "tha": "th", "tur": "tr", "urd": "ur",
    "vie": "vi",
}

_TATOEBA = {
    "tatoeba.afr-eng.afr": ("7bb9e073ad8422d6bfdec7c9ebdcef8ac486e72b237200e447923a8b921a0a56", 30586),
    "tatoeba.afr-eng.eng": ("0b700c125efb4030b4cc50d9d765d5884afc24f39296f29b028a1b2a8512034f", 29049),
    "tatoeba.ara-eng.ara": ("e67a0ae072b79cd9e8eb09f166c3bc0b23488d39f5720f2ee0a8350ae17b719f", 43582),
    "tatoeba.ara-eng.eng": ("3c11838c963f598a52dcf2f452b666353538257001db5c59c3a5f54a999b336b", 29068),
    "tatoeba.ben-eng.ben": ("ac3385695d6a6c7e5d18e38ad4b8b7d3780f3df23dd0ff3f539071b8269a8613", 65990),
    "tatoeba.ben-eng.eng": ("67fbe75fec549d436c3356b6d6f8dd53179b6a908661b5d507d28c7fee83350e", 25713),
    "tatoeba.bul-eng.bul": ("f9fa90cf3599d8c87f7a6ed22f5d648e3ce6687c705656a8c8ea088d891f79d5", 65500),
    "tatoeba.bul-eng.eng": ("4b03b3b52ffb7cf4286e0c4453c90910a3021546f160bdf0e4d39d1f45bfbc0b", 36779),
    "tatoeba.cmn-eng.cmn": ("965d033966fcd186c89741ad49ab4b0a0b2bbd33e02666635ff3b2be23c1ac1f", 33410),
    "tatoeba.cmn-eng.eng": ("29ba36232488f5806aceccac57c59c5e750ddd08edb40eef417e3ada9ff9a239", 35521),
    "tatoeba.deu-eng.deu": ("edfa6f75a42554df388f45891735d5e4214158a99def4b73b5908af4a3054551", 57121),
    "tatoeba.deu-eng.eng": ("eb9cc83a42f2c4b22f310d05311207e41abb56c2a084666cac3ee0f84d2d0b84", 48446),
    "tatoeba.ell-eng.ell": ("4fb3d3d30bdafd15100dfad5c4680f8f2ed5ca87ed0a6122e2fe2aa21fee65e8", 52202),
    "tatoeba.ell-eng.eng": ("1f630710e718e2f85a4e757d3c7f3d6e78ded0b25c99653b4c552138318d9ffe", 26759),
    "tatoeba.est-eng.eng": ("bb033b10596178452aecf2d97ad25580251375e7d224d8b38dad3d93d69b1e4f", 29732),
    "tatoeba.est-eng.est": ("94856999ef35e5357502d7ecf50419d0108b99270e507d9c57f8b283bd1be9c5", 29996),
    "tatoeba.eus-eng.eng": ("1e80f0174ad544697fd69ddcf21287ca10c5e3cacba2fc42bf1d68c460d14ba2", 32008),
    "tatoeba.eus-eng.eus": ("4255fb70a6c268b09fcc59a9b308f0fcaaf45ef45e66fc55bf3c80eac4d8c97b", 34060),
    "tatoeba.fin-eng.eng": ("322e610359f4d24852e673bbe4524d52c26dbf980aca0760e95c66dc21ecd504", 35812),
    "tatoeba.fin-eng.fin": ("8db3c734f755d578445947f1182f40faf2a9a0eca37561dd248717c088802d60", 39857),
    "tatoeba.fra-eng.eng": ("5634220f8a26a9a23b84753a9aec0b0832e6bdaa9da3f83e0bd84c928c3f46e3", 36291),
    "tatoeba.fra-eng.fra": ("644172ff9642fefa9e41c29b7d6f44196518e84350dc44d4992e943c0cca92b6", 43727),
    "tatoeba.heb-eng.eng": ("73c27ed0f76c1d2da199230f05489749e10bb67ab879c6dfee8ca9807d6bd99c", 35840),
    "tatoeba.heb-eng.heb": ("4a07ca4b8a6fb7ab499791573a2454730f47acbe209359d7b9372a9f6094a102", 47660),
    "tatoeba.hin-eng.eng": ("adfce2269a55dbac69b25c0f4f6eb89e0f9383165485925a2e042e61b9480562", 34090),
    "tatoeba.hin-eng.hin": ("15e4fb0a394be4438319f1d6955d1aea226e2a8c5ad38798b23b76ae43d742ed", 88468),
    "tatoeba.hun-eng.eng": ("5323266e91ddee67ed1ae00d6bbac0cdf3d37749d1b2da3459bf0d424bc71383", 33554),
    "tatoeba.hun-eng.hun": ("56bd0682be8c1db6568313650b3310d641cc8d0019d12dd7caf201302350eeac", 35335),
    "tatoeba.ind-eng.eng": ("62a3f5127b60eb3526b8fa3994a68fa1a1f114f3a395307a8808a3517c05ffc5", 34875),
    "tatoeba.ind-eng.ind": ("4f03cd70cba071f746eacd3ebf6b60fd5a8377ce18b4cc52edec6721f05f352a", 39969),
    "tatoeba.ita-eng.eng": ("738bf8f981e42d285f4f08bc09238782d285b02050e6e95287aa4e998bb7b24b", 31596),
    "tatoeba.ita-eng.ita": ("9b3f369d0ed92273b46dd3b983721636e3d15024ce7125f5103229249c386d26", 34237),
    "tatoeba.jav-eng.eng": ("172776353690f6c047ea21da969fa6979980d692fff1cfbac17eb25851423760", 6456),
    "tatoeba.jav-eng.jav": ("ad88399db8f94c2a040aa53e7e862225964fac9308a3beb3d5b38f3eca2f827f", 7457),
    "tatoeba.jpn-eng.eng": ("b42129b34e1bf225ccc25fc00e532a6113af98adbc6605b93021bd8aadeb68b6", 39239),
    "tatoeba.jpn-eng.jpn": ("56040bd6949170a631039d9f8f4c6440db8761b0065c9686feba55c99a320d46", 53844),
    "tatoeba.kat-eng.eng": ("d70a14aa64fd7c6b545f11aea754a632e1cbecb91af27fcf6a98a8449a48a8e7", 21193),
    "tatoeba.kat-eng.kat": ("6ef69b5efbf355597ed91eb355b33a5f524bdf0875dbeaaccf6375badc20e29b", 50967),
    "tatoeba.kaz-eng.eng": ("0ab684e7032c6520540d5785adf00ef206d097221d0dd4dc9bcaabd64068e10d", 17491),
    "tatoeba.kaz-eng.kaz": ("f20c682582a80b6aa10f3b933db93bc314449b554ce611e263bc75990b319aef", 29687),
    "tatoeba.kor-eng.eng": ("f900cf3c9b72ed5a400e1804702863ff3df00be58eb060902e02285d0e68fab3", 35085),
    "tatoeba.kor-eng.kor": ("e550c84184ec35b1a0dab3154284719511a21746e53c40f46eb6ab08179e9188", 44054),
    "tatoeba.mal-eng.eng": ("4d80cdbb844cd4e33f874e5dc45c1cdda4f80998034448f7eb56b8b6532a6622", 21765),
    "tatoeba.mal-eng.mal": ("1a896f54f85a454fb0123864049c65921ae9dfd0cafda6deef8060f0104d965e", 72952),
    "tatoeba.mar-eng.eng": ("709d09b697dca053c814b9d525b72cb47cb011aa860c6598f3e2b1b3dd1280dd", 27890),
    "tatoeba.mar-eng.mar": ("b2931584fbe62062beb97cc939e4d208ace5ee56f15808860ab14e130fd3c576", 72652),
    "tatoeba.nld-eng.eng": ("3b8836749df573a53235b85ed6771f31bf2de428f520d2d6a1dd94b61b4ef057", 35397),
    "tatoeba.nld-eng.nld": ("d564d4ce1c621ccaefdbe9f5cb08eacccc7bf2a0b58666303e84ca9c7973bdb7", 37866),
    "tatoeba.pes-eng.eng": ("b5c6cf8c8d93ff8f2fe26b53f3ee29b62db9c6f7dcddcb086ba48953f4ce926b", 34853),
    "tatoeba.pes-eng.pes": ("f1553713723491fe5876e1060b18fb4abf0c77be3ba06db2e3307e83aedbbb32", 58866),
    "tatoeba.por-eng.eng": ("deb4568cfb7b7cbbc060a7fe97c4639fb4680842f4fcd28df791ffdbb753855a", 35854),
    "tatoeba.por-eng.por": ("b0c926a232c9889a87a1a970f9399c5618c2d95baf204321e9da794c0aec16f5", 39331),
    "tatoeba.rus-eng.eng": ("7b26f52d6085b7c4944d6f5f6f5b6e1932085b42112f1444db515ce59e878fb8", 33650),
    "tatoeba.rus-eng.rus": ("446ff2cae66053c2277d9735b2c2df6b786cae258385f7ade7bed68d8835c6a0", 58822),
    "tatoeba.spa-eng.eng": ("89e4470f4572040b1ca94b3edad97dcd8bd2f0141f072e12933b8659dadf917d", 34776),
    "tatoeba.spa-eng.spa": ("f9628cea40481e8251f0999718bd893cff0f261752f5e526b3bc20284e2ca018", 37490),
    "tatoeba.swh-eng.eng": ("e8539647caff9e329776ae863b6224d432923c6e4e9256b9df92ca58ff282eac", 10822),
    "tatoeba.swh-eng.swh": ("1c672915446c336cc378676e6dbf91eb54d27bbfd0c61563d349265bc6374753", 9645),
    "tatoeba.tam-eng.eng": ("e7c5106acdd100214a161970b2a5c31e7386e5b6a963e3d3afdf30412c90ac53", 8888),
    "tatoeba.tam-eng.tam": ("bde87fb1ddedccf6c7a2b70ffdd19a959a573c113c2e7a041c4b623fb2170bde", 30553),
    "tatoeba.tel-eng.eng": ("1efc2ef57d9b1ecebfc4baa45e86fd793e38473304e9c043aebabc3a1b29a294", 6806),
    "tatoeba.tel-eng.tel": ("7e1a1bcd106cce650a09e2f042f1354b55b29bea2bcfa86554dfa0ad12ce8976", 18337),
    "tatoeba.tgl-eng.eng": ("e7c9beda3f3072a968a34a7226a66d1ebf1dcb33cf002805dc752f80a7c620ae", 31632),
    "tatoeba.tgl-eng.tgl": ("f99165dc05190b99f6574fe24db884ff85d111612a25e7a37323f001aafc2a6e", 36506),
    "tatoeba.tha-eng.eng": ("2881c82d2c5fa59cf0a68bc9e012f5e0b0a716f7357cbecf77c247efc2fd7294", 18439),
    "tatoeba.tha-eng.tha": ("65c7b3c01a56a1ac8971e72e0ea8e74a027718dc84044d8802c0ab36395a3156", 44759),
    "tatoeba.tur-eng.eng": ("a768df7dd3d1344f872a458b32c3a65e24f8381826ccb16ba6677426176c8121", 34278),
    "tatoeba.tur-eng.tur": ("1ffa0acc006018b3105abda41a4d4ca42f3c122964a49b71793546367b079a86", 37607),
    "tatoeba.urd-eng.eng": ("dab35fda3f73b3fd86b6b9f9f9f6242430961aa5d1ac247adbc646867df79cec", 31893),
    "tatoeba.urd-eng.urd": ("2efc22dc61885a9454aeeee68c8b841c7f9138d53ba644a82308bd210140450b", 56819),
    "tatoeba.vie-eng.eng": ("a1f60bd8ae6c42224a4c050d2aa1ff4242d14827d64d7831e96ecf2b2c367f5f", 38686),
    "tatoeba.vie-eng.vie": ("6dbb02d778b0bfc8678cd85f87db76de55dd7e409a26fe32ad42d50e0f1fff77", 52721),
}

_XQUAD = {
    "xquad.ar.json": ("abdabd7afed5c635d99cca0f3f0d0c9d9ed0bc77451e963c2e4e0638c29e486d", 1582988),
    "xquad.de.json": ("990b5d746746ed65ed4702ea5f35f99ffa4e2f1c390c07d003642acd937916f9", 669810),
    "xquad.el.json": ("821cf0f88e73fa258fd2f548b19b6ec39f7025059e16f6f9fc8cd797c9c3663e", 1918889),
    "xquad.en.json": ("e4c57d1c9143aaa1c5d265ba5987a65f4e69528d2a98f29d6e75019b10344f29", 609383),
    "xquad.es.json": ("dcbae93ec3a9f4b9e78fd834a171d6f96c1a875e10e15b7530b7e4ef4971e37e", 684322),
    "xquad.hi.json": ("df2cce3532b37e9beb8979704b5c9a4bf874358f105395a298b89427b43b9d24", 1680538),
    "xquad.ru.json": ("208d5b1aa154c52b1b5c5eda16281e455e8fd198cdb9af3f469f0d6037d973bf", 1896368),
    "xquad.th.json": ("5cdda11d0e1e075f7872abf4e6ae830388ce7f617964d542308e9ae4257e0f43", 1809143),
    "xquad.tr.json": ("92179a564774b7696100d144c1e10870d0a966b6fccbdd254a65b9d2ab1971cc", 729506),
    "xquad.vi.json": ("f619a1eb11fb42d3ab0834259e488a65f585447ef6154437bfb7199d85161a04", 911401),
    "xquad.zh.json": ("691d0b3359bc6b8faa8de931dfdfe21d50a65861ae348e32a0d1a0190b0c8835", 808652),
}

_BUCC = {
    "bucc2018-de-en.sample-gold.tar.bz2": ("8e16ba8b02ef8d648b06adfbd6dfb188f43524e18f97b2b12a14a086caac62f3", 2529652),
    "bucc2018-de-en.training-gold.tar.bz2": ("766e0fdebbd1438fb87c21254828eb13c8b997d8fbab002103dd060dcac50c5c", 28189548),
    "bucc2018-fr-en.sample-gold.tar.bz2": ("df9eb3966954e163c9264076f7c9c1eb56d9d8a91855f9d3afbf2c0fdaef0a08", 1948831),
    "bucc2018-fr-en.training-gold.tar.bz2": ("53c0d0e7dd97dc89593a2db25a26c5f0ccdc7113e8451263bb0c80e4c4c7dc30", 20757713),
    "bucc2018-ru-en.sample-gold.tar.bz2": ("fce3cabc7ee50ddb4b18aa6fb090e2669c8383d2a29fc97eed6ae70fed9a23e5", 4269233),
    "bucc2018-ru-en.training-gold.tar.bz2": ("1895df56e936ca3d4f5b12299ceffe0b7ff4806584c40bdaa3ae1d445f25afa5", 37085079),
    "bucc2018-zh-en.sample-gold.tar.bz2": ("a3425be5c0320ee131a0927b66c3e29befb3b481ebf1b87257e660e514bc16ac", 769869),
    "bucc2018-zh-en.training-gold.tar.bz2": ("3facb71798277c8f44dc78c1f8ae2110f254d0e14799f3508eedd54b4236877a", 6344925),
}

# XCOPA: file name -> (sha256, size); the URL adds data/<lang>/ at XCOPA_COMMIT.
_XCOPA = {
    "val.et.jsonl": ("c6d8f33c11e968fe519d5ddbb61769a73a5ac58ac889060df2fdf5e8a54d6a3c", 19643),
    "test.et.jsonl": ("f670f3f726342fa3ccd6f844b72d378ed5d0a9a71bd152e6b3607d402eaafa92", 96789),
    "val.ht.jsonl": ("022462ff8730fa9345e91e3d174fa346da328d2e7a1225a5938e9897697d61f5", 19931),
    "test.ht.jsonl": ("ec4a5502e190a51fef4d9cb2080164726772b2d46f7a51c2b86f56748d303428", 98746),
    "val.id.jsonl": ("b3ac8c87c516d64c05ee39becc038ae747b1522010f385796f6c19019f75c77c", 21831),
    "test.id.jsonl": ("b6fe1cfc10bcf02f724dddf876d01df370be0a049cdf1ebf7be8f34504ff66da", 103516),
    "val.it.jsonl": ("f8389021d6595ef994ed8ff163dfddbcc3f5473b4e7b4803745fb98a7ecd1031", 21299),
    "test.it.jsonl": ("33564a0dbefc9ff3a7dc868d9a9718d7aaaf7fb136879ae4d2ba022f311f8a88", 105221),
    "val.qu.jsonl": ("9e3306acace7bb39c35d20984f2aeca7aa2619af00871ed4743b89f950f7572d", 21916),
    "test.qu.jsonl": ("ac20d5cd67545c41e2fa2e187e88ba4d4c2d7ece1a6489041d44113a5553bd7f", 108870),
    "val.sw.jsonl": ("e35fb416b7b9557bcede9987a53d56895c04f3608817d3326da09c52082fbfc5", 20642),
    "test.sw.jsonl": ("4ca583c40f9ac045a9b6114fc1f052b0f4ca7402e7a78f567c32a7d8246aa273", 100855),
    "val.ta.jsonl": ("fd22e97aab22d431a14d569fb36de4c6a2fe48ee871a1cbf5fab797176b4e9ee", 44972),
    "test.ta.jsonl": ("ae282423e45f0aed4174cea7594d200214a66b9c721b60f74a21fb2d5adeaf45", 216432),
    "val.th.jsonl": ("b4c8ae4d5392e7e74667a366c5ed2e39729d67522c1bd35d82e6473505236d47", 29793),
    "test.th.jsonl": ("63030f192c4fd8b3c066a8954203d5cdd57d803e8e1069fcca97ff0e7b669423", 144341),
    "val.tr.jsonl": ("879848162ac5f614f4569c99d37e03bb66034c27684968643371c6c9662bc812", 19873),
    "test.tr.jsonl": ("1f0152af30bb46acccd0db14ecfe29014c1770c09b0af9b377e15bb4837178ec", 97908),
    "val.vi.jsonl": ("6f804ec3c25b12a3d51f58e338b631bc1b45e7223b15481f8593923e0bdb26fa", 23067),
    "test.vi.jsonl": ("24cb28827066abb00a2f4004d86c447c4a30a9edb17938b26b61fb2385f94170", 110488),
    "val.zh.jsonl": ("8f638466c196342104bdbe9276e7d91fe0abcc044e9a9ad715f30c8ad618bcdd", 19577),
    "test.zh.jsonl": ("c9b42590399214b9f066adacac2465d7286f5e590181fe6bfd7f6139531b83d4", 95444),
}

SOURCES: dict[str, DownloadSource] = {
    s.name: s
    for s in [
        # ---------------------------------------------------------------- intermediate tasks
        DownloadSource("anli", (RemoteFile(
            "anli_v0.1.zip", "https://dl.fbaipublicfiles.com/anli/anli_v0.1.zip",
            "16ac929a7e90ecf9093deaec89cc81fe86a379265a5320a150028efe50c5cde8", 18621352),),
            _infos("anli"), "https://github.com/facebookresearch/anli"),
        DownloadSource("snli", (RemoteFile(
            "snli_1.0.zip", "https://nlp.stanford.edu/projects/snli/snli_1.0.zip",
            "afb3d70a5af5d8de0d9d81e2637e0fb8c22d1235c2749d83125ca43dab0dbd3e", 94550081),),
            _infos("snli"), "https://nlp.stanford.edu/projects/snli/"),
        DownloadSource("mnli", (RemoteFile(
            "MNLI.zip", "https://dl.fbaipublicfiles.com/glue/data/MNLI.zip",
            "e7c1d896d26ed6caf700110645df426cc2d8ebf02a5ab743d5a5c68ac1c83633", 312783507),),
            _infos("glue"), "https://cims.nyu.edu/~sbowman/multinli/"),
        DownloadSource("qqp", (RemoteFile(
            "QQP-clean.zip", "https://dl.fbaipublicfiles.com/glue/data/QQP-clean.zip",
            "40e7c862c04eb26ee04b67fd900e76c45c6ba8e6d8fab4f8f1f8072a1a3fbae0", 41696084),),
            _infos("glue"), "https://gluebenchmark.com/"),
        DownloadSource("squad_v1", _files("https://rajpurkar.github.io/SQuAD-explorer/dataset/", {
            "train-v1.1.json": ("3527663986b8295af4f7fcdff1ba1ff3f72d07d61a20f487cb238a6ef92fd955", 30288272),
            "dev-v1.1.json": ("95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9", 4854279),
        }), _infos("squad"), "https://rajpurkar.github.io/SQuAD-explorer/"),
        DownloadSource("squad_v2", _files("https://rajpurkar.github.io/SQuAD-explorer/dataset/", {
            "train-v2.0.json": ("68dcfbb971bd3e96d5b46c7177b16c1a4e7d4bdef19fb204502738552dede002", 42123633),
            "dev-v2.0.json": ("80a5225e94905956a6446d296ca1093975c4d3b3260f1d6c8f68bc2ab77182d8", 4370528),
        }), _infos("squad_v2"), "https://rajpurkar.github.io/SQuAD-explorer/"),
        DownloadSource("hellaswag", _files("https://github.com/rowanz/hellaswag/raw/master/data/", {
            "hellaswag_train.jsonl": ("dae5e69249868cb9fe4e23ff925c60b66169564cfb7072d793cd7356a2b69f8d", 47496131),
            "hellaswag_val.jsonl": ("0aa3b88843990f3f10a97b9575c94d7b71fb2205240ba04ae4884d9e9c992588", 12246618),
        }), _infos("hellaswag"), "https://rowanzellers.com/hellaswag/"),
        DownloadSource("cosmosqa", _files("https://github.com/wilburOne/cosmosqa/raw/master/data/", {
            "train.csv": ("d8d5ca1f9f6534b6530550718591af89372d976a8fc419360fab4158dee4d0b2", 16660449),
            "valid.csv": ("a6a94fc1463ca82bb10f98ef68ed535405e6f5c36e044ff8e136b5c19dea63f3", 2128345),
        }), _infos("cosmos_qa"), "https://wilburone.github.io/cosmos/"),
        DownloadSource("commonsenseqa", _files("https://s3.amazonaws.com/commensenseqa/", {
            "train_rand_split.jsonl": ("58ffa3c8472410e24b8c43f423d89c8a003d8284698a6ed7874355dedd09a2fb", 3785890),
            "dev_rand_split.jsonl": ("3210497fdaae614ac085d9eb873dd7f4d49b6f965a93adadc803e1229fd8a02a", 471653),
        }), _infos("commonsense_qa"), "https://www.tau-nlp.org/commonsenseqa"),
        # ---------------------------------------------------------------- XCOPA's English recipe
        # Social IQa (train/dev JSONL + label lists) and SuperGLUE's COPA, as XTREME-R trains
        # XCOPA (google-research/xtreme scripts/train_xcopa.sh). Pins from the records only.
        DownloadSource("siqa", (RemoteFile(
            "socialiqa-train-dev.zip", "https://storage.googleapis.com/ai2-mosaic/public/socialiqa/socialiqa-train-dev.zip",
            "ee073914a0fc33265cfbcfc50ec20df9b2e07809c3f420f599138d1f394ef5c3", 2198056),),
            f"{HF_DATASETS_REASONING} datasets/social_i_qa/dataset_infos.json",
            "https://leaderboard.allenai.org/socialiqa/submissions/get-started"),
        DownloadSource("copa", (RemoteFile(
            "COPA.zip", "https://dl.fbaipublicfiles.com/glue/superglue/data/v2/COPA.zip",
            "405906cddac74bc1e1ce8220f1107d1025b66a25ef10149d91b10bb30651125f", 43986),),
            f"{HF_DATASETS_REASONING} datasets/super_glue/dataset_infos.json",
            "https://people.ict.usc.edu/~gordon/copa.html"),
        # ---------------------------------------------------------------- XTREME targets
        DownloadSource("xnli", (RemoteFile(
            "XNLI-1.0.zip", "https://dl.fbaipublicfiles.com/XNLI/XNLI-1.0.zip",
            "4ba1d5e1afdb7161f0f23c66dc787802ccfa8a25a3ddd3b165a35e50df346ab1", 17865352),),
            _infos("xtreme"), "https://github.com/facebookresearch/XNLI"),
        DownloadSource("pawsx", (RemoteFile(
            "x-final.tar.gz", "https://storage.googleapis.com/paws/pawsx/x-final.tar.gz",
            "4146db499101d66e68ae4c8ed3cf9dadecd625f44b7d8cf3d4a0fe93afc4fd9f", 30282057),),
            _infos("xtreme"), "https://github.com/google-research-datasets/paws/tree/master/pawsx"),
        DownloadSource("udpos", (RemoteFile(
            "ud-treebanks-v2.5.tgz",
            "https://lindat.mff.cuni.cz/repository/xmlui/bitstream/handle/11234/1-3105/ud-treebanks-v2.5.tgz",
            "5ff973e44345a5f69b94cc1427158e14e851c967d58773cc2ac5a1d3adaca409", 355216681),),
            _infos("xtreme"), "https://universaldependencies.org/"),
        # PAN-X: XTREME's AmazonPhotos.zip needs a manual browser download and has no published
        # checksum; the same per-language archives ({lang}.tar.gz) are in Hugging Face's copy.
        DownloadSource("panx", (RemoteFile(
            "panx_dataset.zip", "https://s3.amazonaws.com/datasets.huggingface.co/wikiann/1.1.0/panx_dataset.zip",
            "164814b64f749ad000988b5ab45050b5116913b3db466ab173008955ddf649a4", 234008884),),
            _infos("xtreme"), "https://github.com/afshinrahimi/mmner"),
        DownloadSource("xquad", _files(
            f"https://raw.githubusercontent.com/deepmind/xquad/{XQUAD_COMMIT}/", _XQUAD),
            f"{_infos('xtreme')}; deepmind/xquad@{XQUAD_COMMIT}", "https://github.com/deepmind/xquad"),
        DownloadSource("mlqa", (RemoteFile(
            "MLQA_V1.zip", "https://dl.fbaipublicfiles.com/MLQA/MLQA_V1.zip",
            "246e8089933d13007fe80684d5c5c0713d6834cf8b3b4a0ec7c66f0a0d2baac8", 75719050),),
            _infos("xtreme"), "https://github.com/facebookresearch/MLQA"),
        # ---------------------------------------------------------------- translated training data
        # MNLI's training set machine-translated by XNLI's authors (XNLI-MT 1.0), and SQuAD v1.1's
        # by MLQA's authors (MLQA's translate-train release), as the legacy xnli and mlqa loading
        # scripts download them.
        DownloadSource("xnli_mt", (RemoteFile(
            "XNLI-MT-1.0.zip", "https://dl.fbaipublicfiles.com/XNLI/XNLI-MT-1.0.zip",
            "f732517ba2fb1d550e9f3c2aabaef6017c91ee2dcec90e878f138764d224db05", 466098360),),
            _infos("xnli"), "https://github.com/facebookresearch/XNLI"),
        DownloadSource("mlqa_translate_train", (RemoteFile(
            "mlqa-translate-train.tar.gz", "https://dl.fbaipublicfiles.com/MLQA/mlqa-translate-train.tar.gz",
            "e510277b0bc3c0639f53839aba8591aebfe803b8b84c5c2ef0513768b86b7cf9", 63364123),),
            _infos("mlqa"), "https://github.com/facebookresearch/MLQA"),
        DownloadSource("tydiqa", _files("https://storage.googleapis.com/tydiqa/v1.1/", {
            "tydiqa-goldp-v1.1-train.json": ("cefc8e09ff2548d9b10a678d3a6bbbe5bc036be543f92418819ea676c97be23b", 58004076),
            "tydiqa-goldp-v1.1-dev.json": ("b286e0f34bc7f52259359989716f369b160565bd12ad8f3a3e311f9b0dbad1c0", 5617409),
        }), _infos("xtreme"), "https://github.com/google-research-datasets/tydiqa"),
        # BUCC 2018: the full comparable corpora (parallel pairs hidden among non-parallel
        # sentences); the hub's gold-only pairs cannot reproduce mining.
        DownloadSource("bucc2018", _files("https://comparable.limsi.fr/bucc2018/", _BUCC),
                       _infos("xtreme"), "https://comparable.limsi.fr/bucc2018/"),
        DownloadSource("tatoeba", _files(
            f"https://raw.githubusercontent.com/facebookresearch/LASER/{LASER_COMMIT}/data/tatoeba/v1/", _TATOEBA),
            f"{_infos('xtreme')}; facebookresearch/LASER@{LASER_COMMIT}",
            "https://github.com/facebookresearch/LASER/tree/main/data/tatoeba/v1"),
        # ---------------------------------------------------------------- XTREME-R targets
        DownloadSource("xcopa", tuple(
            RemoteFile(name, f"https://raw.githubusercontent.com/cambridgeltl/xcopa/{XCOPA_COMMIT}/data/"
                             f"{name.split('.')[1]}/{name}", sha, size)
            for name, (sha, size) in _XCOPA.items()),
            f"cambridgeltl/xcopa@{XCOPA_COMMIT} data/ (git blobs)", "https://github.com/cambridgeltl/xcopa"),
    ]
}

# ---------------------------------------------------------------- hub corpora (+MLM variant)
#: wikimedia/wikipedia (the 2023-11-01 dumps as parquet), at the commit used by public pinned
#: setups (corpus-building scripts pinning this revision for their 20231101.<lang> configs).
WIKIPEDIA_REVISION = "b04c8d1ceb2f5cd4588862100d08de323dccfbaa"

#: XTREME language code -> Wikipedia's (its subdomain, the dataset's configuration suffix), where
#: they differ. Every language of XTREME and XTREME-R (tasks.DATASETS["mlm_corpus"]) has a
#: Wikipedia under its own code (zh: the one Chinese Wikipedia; pa: Gurmukhi, not pnb), so the
#: table is empty; codes that differ elsewhere (e.g. Norwegian Bokmal nb -> no) would go here.
WIKIPEDIA_CODES: dict[str, str] = {}


def wikipedia_code(lang: str) -> str:
    """The Wikipedia (and wikimedia/wikipedia configuration) code of an XTREME language."""
    return WIKIPEDIA_CODES.get(lang, lang)


@dataclass(frozen=True)
class HubCorpus:
    """An unlabelled corpus on the Hugging Face hub (a dataset repository at a pinned commit).

    One download job per language (``rules/data.smk: download_corpus``) fetches the files of
    ``<folder>/<files>`` (``{lang}`` filled with the language's code in the corpus), resolved
    against the hub's file list at ``revision`` and verified against its metadata (LFS sha256).
    """

    name: str
    repo_id: str
    #: A commit id (40 hex): files and checksums are those of this commit.
    revision: str
    #: Configuration folder of one language, ``{lang}`` = the corpus' code (``wikipedia_code``).
    folder: str
    #: Files of that folder to fetch (a glob; shard counts differ per language).
    files: str
    #: Where the revision comes from.
    pinned_from: str
    homepage: str
    licence: str
    #: The parquet column holding the text.
    column: str = "text"

    def pattern(self, lang: str) -> str:
        """The file pattern of one (XTREME) language, relative to the repository root."""
        return f"{self.folder.format(lang=wikipedia_code(lang))}/{self.files}"


HUB_CORPORA: dict[str, HubCorpus] = {
    c.name: c
    for c in [
        # The first shard of each language's 2023-11-01 dump: the +MLM variant samples
        # intermediate.variants.mlm.sentences_per_language sentences from it (xstilts.corpus).
        HubCorpus("wikipedia", "wikimedia/wikipedia", WIKIPEDIA_REVISION, "20231101.{lang}",
                  "train-00000-of-*.parquet", "wikimedia/wikipedia commit used by public pinned setups",
                  "https://huggingface.co/datasets/wikimedia/wikipedia",
                  "CC BY-SA 3.0 and GFDL (Wikipedia text; attribute Wikipedia's authors)"),
    ]
}

#: Canonical dataset -> the download source it is converted from (None: a manual local copy).
#: A name of ``HUB_CORPORA`` is a hub corpus (one download per language), else a ``SOURCES`` name.
DATASET_SOURCES: dict[str, str | None] = {
    "anli_r1": "anli", "anli_r2": "anli", "anli_r3": "anli", "snli": "snli", "mnli": "mnli",
    "qqp": "qqp", "squad_v1": "squad_v1", "squad_v2": "squad_v2", "hellaswag": "hellaswag",
    "cosmosqa": "cosmosqa", "commonsenseqa": "commonsenseqa", "ccg": None,
    "xnli": "xnli", "pawsx": "pawsx", "udpos": "udpos", "panx": "panx", "xquad": "xquad",
    "mlqa": "mlqa", "tydiqa": "tydiqa", "bucc2018": "bucc2018", "tatoeba": "tatoeba",
    "siqa": "siqa", "copa": "copa", "xcopa": "xcopa", "mlm_corpus": "wikipedia",
    "mnli_mt": "xnli_mt", "squad_v1_mt": "mlqa_translate_train",
}

#: The CCGbank release (LDC2005T13) is read from data.download.ccgbank; these AUTO sections
#: make the standard splits (train 02-21, dev 00).
CCGBANK = "CCGbank 1.1 (LDC2005T13), https://catalog.ldc.upenn.edu/LDC2005T13"


def source_of(dataset: str) -> str | None:
    """The download source of a canonical dataset (None for the manual CCGbank; a name of
    ``HUB_CORPORA`` for a corpus downloaded from the hub per language)."""
    try:
        return DATASET_SOURCES[dataset]
    except KeyError:
        raise KeyError(f"no download source is defined for dataset {dataset!r}") from None


def load_pins(path: str | os.PathLike) -> dict[str, RemoteFile]:
    """Replacement pins from a YAML file the user controls (``data.download.pins``).

    The file maps an upstream file name (as in ``SOURCES``) to ``{url, sha256, size}``: the bytes
    at ``url`` are then verified against that sha256 and size instead of the upstream pin (a lab's
    mirror of re-packed archives, or the miniature archives of the tests). Raises ``ValueError``
    naming the entry and the fix.
    """
    import difflib

    import yaml

    where = f"data.download.pins: {path}"
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ValueError(f"{where}: no such file; write it (upstream file name -> {{url, sha256, size}}) or unset "
                         "data.download.pins to use the pins of scripts/xstilts/sources.py") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{where}: not valid YAML ({e})") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{where}: expected a mapping of upstream file name -> {{url, sha256, size}}")
    names = {f.name for source in SOURCES.values() for f in source.files}
    out = {}
    for name, pin in data.items():
        if name not in names:
            close = difflib.get_close_matches(str(name), sorted(names), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(f"{where}: {name!r} is not a pinned file name{hint}; keys are file names as listed in "
                             "scripts/xstilts/sources.py")
        if not isinstance(pin, dict) or set(pin) != {"url", "sha256", "size"}:
            got = sorted(pin) if isinstance(pin, dict) else type(pin).__name__
            raise ValueError(f"{where}: {name}: expected exactly the keys sha256, size, url; got {got}")
        url, sha, size = pin["url"], pin["sha256"], pin["size"]
        if not isinstance(url, str) or not _URL.match(url):
            raise ValueError(f"{where}: {name}: url {url!r} is not an http(s):// or file:// URL")
        if not isinstance(sha, str) or not _SHA256.match(sha):
            raise ValueError(f"{where}: {name}: sha256 {sha!r} is not 64 lower-case hex characters")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"{where}: {name}: size {size!r} is not a byte count (a non-negative integer)")
        out[name] = RemoteFile(name, url, sha, size)
    return out


def download_job(source: str, mirrors: dict[str, str] | None = None,
                 replaced: dict[str, RemoteFile] | None = None) -> list[dict[str, Any]]:
    """The files of one download job as plain dicts (Snakemake params).

    ``mirrors`` maps a file name to another URL serving the same bytes (the checksum still
    applies), for when an upstream host moves. ``replaced`` (``load_pins``) replaces a file's
    whole pin; such a file also names the upstream sha256 it replaces (``replaces``), so the
    download job can say so loudly.
    """
    mirrors, replaced = mirrors or {}, replaced or {}
    files = []
    for upstream in SOURCES[source].files:
        f = replaced.get(upstream.name, upstream)
        entry: dict[str, Any] = {"name": f.name, "url": mirrors.get(f.name, f.url), "sha256": f.sha256, "size": f.size}
        if f is not upstream:
            entry["replaces"] = upstream.sha256
        files.append(entry)
    return files


def pins(source: str, replaced: dict[str, RemoteFile] | None = None) -> dict[str, str | None]:
    """File name -> sha256 of a source: what a conversion depends on (``replaced``: ``load_pins``)."""
    replaced = replaced or {}
    return {f.name: replaced.get(f.name, f).sha256 for f in SOURCES[source].files}


def unpinned() -> list[str]:
    """Every upstream file without a verified checksum (there are none at present)."""
    return [f"{s.name}/{f.name}" for s in SOURCES.values() for f in s.files if not f.sha256]

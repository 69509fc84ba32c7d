"""Word lists of the offline assistant: what it knows about words, nothing else.

Everything here is an immutable constant (frozensets, tuples, read-only
mappings), so understanding a message never depends on what the process did
before: same input, same output, in any process.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

#: Words the intent rules rely on: a misspelling one or two edits away from one
#: of them is corrected before matching ("cancle" -> "cancel").
LEXICON: Final = frozenset(
    """
    abroad account address agent amex app apple arrive arrived arriving awful back broken
    bug cancel cancellation cancelled cancelling card change checkout chipped code complain
    complaint contact cost costs countries country coupon cracked crash customs damage
    damaged data days defective delayed delete deliver delivered delivery dented
    disappointed discount email error exchange express faulty forgot free google guarantee
    history horrible hours human international invoice late locked login long lost manager
    mastercard methods missing money name never number open order orders overseas package
    parcel password past pay payment paypal person phone previous privacy purchases receive
    received refund refunded refunds reimburse replace replaced replacement representative
    reset return returned returning returns ripped saturday scratched shattered shipped
    shipping smashed standard status still stolen sunday supervisor support swap terrible
    torn track tracking unhappy update visa voucher warranty website week weekend where
    working wrong yet
    """.split()  # noqa: SIM905
)

#: Everyday words that are spelt right although they are close to a lexicon word.
COMMON: Final = frozenset(
    """
    about above actually afternoon again ago all along already also among and another any
    are arrives avenue back backpack bad because been being bike bill birch blanket bottle
    buck bucks but called came can cant card care cart case cash cast city coffee color
    colour come could court customer customers data date day days dear delivering did didnt
    does done dont dress email evening fame fast fill fine first five for fore form fort
    four from full game gate gave get give good got had hand hard has have headphones held
    hello help here hey hi hold home hope hour how i'm instead into invoice it's item items
    its ive jacket joint just knife know lamp lane lantern large last late let lets life
    light like line list live look lost love lust made mail make mat maybe me medium might
    mike mine miss mist mode month months more morning most move moved mover movie mug must
    my name need new next night nine not now number off okay old one only order ordered
    orders other our out over paint pair pairs part past person personal phone pillow
    pillows pine place plane plans please point port post press price print prise pull push
    really recall refill refine retro right road route router rush said same says see seen
    send sent service services set ship shipment shoe shop shot should show sight since size
    slow small snow socks some sorry sort spat speaker spot step still stop stopped street
    stuff sure take tell than thank thanks that the their them then there these they thing
    things think this those though three time today told tomorrow took tote tracker two us
    very wall want was week weeks well were what when where which while who whole whose why
    will with wont word work world worth would write wrong wrote yesterday you your
    """.split()  # noqa: SIM905
)

#: Suffixes that keep a known word known ("returning", "refunds").
SUFFIXES: Final = ("s", "es", "ed", "d", "ing", "al", "er", "ers", "ly", "y")

#: Spoken numbers customers write instead of digits ("twenty dollars").
NUMBER_WORDS: Final = MappingProxyType({
    'one': 1, 'two': 2, 'three': 3, 'four': 4, 'five': 5, 'six': 6, 'seven': 7, 'eight': 8,
    'nine': 9, 'ten': 10, 'eleven': 11, 'twelve': 12, 'fifteen': 15, 'twenty': 20, 'thirty': 30,
    'forty': 40, 'fifty': 50, 'sixty': 60, 'seventy': 70, 'eighty': 80, 'ninety': 90,
    'hundred': 100,
})

#: Words of other languages the offline assistant can still search with (it drafts
#: in English only): word -> the knowledge base's English words.
FOREIGN_GLOSSARY: Final = MappingProxyType({
    'puedo': 'can i',
    'reembolso': 'refund', 'reembolsos': 'refund', 'devolver': 'return', 'devolución': 'return',
    'devolucion': 'return', 'producto': 'product', 'pedido': 'order', 'cancelar': 'cancel',
    'envío': 'shipping', 'envio': 'shipping', 'contraseña': 'password', 'cuenta': 'account',
    'garantía': 'warranty', 'tarda': 'how long', 'dónde': 'where',
    'está': 'is', 'mi': 'my', 'mis': 'my', 'donde': 'where',
    'pago': 'payment', 'horario': 'hours', 'roto': 'damaged', 'dañado': 'damaged',
    'rückgabe': 'return', 'zurückgeben': 'return', 'rückerstattung': 'refund',
    'erstattung': 'refund', 'bestellung': 'order', 'stornieren': 'cancel',
    'passwort': 'password', 'zurücksetzen': 'reset', 'versand': 'shipping',
    'lieferung': 'delivery', 'konto': 'account', 'garantie': 'warranty', 'kaputt': 'damaged',
    'beschädigt': 'damaged', 'zahlung': 'payment', 'wo': 'where', 'ist': 'is', 'mein': 'my',
    'meine': 'my', 'remboursement': 'refund', 'rembourser': 'refund', 'retour': 'return',
    'retourner': 'return', 'commande': 'order', 'annuler': 'cancel', 'livraison': 'delivery',
    'livrez': 'ship', 'vous': '', 'en': 'to', 'livrer': 'deliver',
    'france': 'france international', 'mot': '',
    'passe': 'password', 'compte': 'account', 'paiement': 'payment', 'cassé': 'damaged',
    'endommagé': 'damaged',
})

#: Words that say a message is not in English (the draft says it drafts in English only).
FOREIGN_MARKERS: Final = frozenset(
    """
    bitte bonjour ce cuanto cuánto danke das der des die donde dónde eine einen el est favor
    gracias hallo hola ich ist je kann la las le livrez los ma mein meine merci mes mi mon
    nicht pedido por pouvez puedo puis que quiero un una und une vous wie wo livrez livrer
    necesito ayuda con tengo para voudrais annuler commande je ich möchte hola
    """.split()  # noqa: SIM905
)

#: Customer words -> the knowledge base's words (retrieval synonyms), and
#: product words -> the kind of problem articles file them under.
RETRIEVAL_SYNONYMS: Final = MappingProxyType({
    'send back': 'return', 'bring back': 'return', 'money back': 'refund', 'chipped': 'damaged',
    'dented': 'damaged', 'cracked': 'damaged', 'smashed': 'damaged', 'ripped': 'damaged',
    'torn': 'damaged', 'frayed': 'damaged', 'dead': 'defective', 'hole': 'damaged',
    'holes': 'damaged', 'shattered': 'damaged', 'scratched': 'damaged', 'leaking': 'damaged',
    'leaks': 'damaged', 'in pieces': 'damaged', 'broke': 'damaged', 'bigger': 'size exchange',
    'smaller': 'size exchange', 'colour': 'exchange colour', 'color': 'exchange colour',
    'swap': 'exchange', 'pw': 'password', 'pwd': 'password', 'login': 'sign in',
    'log in': 'sign in', 'stuff': 'order', 'postage': 'shipping', 'bucks': '',
    'parcel': 'parcel', 'package': 'parcel',
})

#: Product nouns customers use; the articles never name products, so these words
#: only pull searches towards look-alike words ("socks" -> "stock").
PRODUCT_WORDS: Final = frozenset(
    """
    backpack bag blade blanket bottle carafe coat coffee earbuds filter headband headphone
    headphones item items jacket knife knives lamp lantern lanterns mat mug pillow pillows
    product products set sock socks speaker speakers strap stuff thing things throw tote
    tracker watch yoga zip zipper
    """.split()  # noqa: SIM905
)

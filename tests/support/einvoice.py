"""A period's draw as the MOF's QryWinningList answer writes it, for the e-invoice tests."""

from __future__ import annotations


def winning_list(period: int = 11410, **over: str) -> dict[str, str]:
    """Special 12345678, grand 87654321, first 00507588 / 40912336 / 91286147, an extra
    sixth 765; the usual amounts as zero-padded strings; unused slots empty."""
    data = {"v": "0.2", "code": "200", "msg": "查詢成功", "invoYm": f"{period:05d}",
            "superPrizeNo": "12345678", "spcPrizeNo": "87654321",
            "firstPrizeNo1": "00507588", "firstPrizeNo2": "40912336",
            "firstPrizeNo3": "91286147", "sixthPrizeNo1": "765", "superPrizeAmt": "10000000",
            "spcPrizeAmt": "02000000", "firstPrizeAmt": "00200000",
            "secondPrizeAmt": "00040000", "thirdPrizeAmt": "00010000",
            "fourthPrizeAmt": "00004000", "fifthPrizeAmt": "00001000",
            "sixthPrizeAmt": "00000200"}
    data.update({f"firstPrizeNo{n}": "" for n in range(4, 11)})
    data.update({f"sixthPrizeNo{n}": "" for n in range(2, 7)})
    data.update(over)
    return data

"""The table registry: every domain's tables, imported in one place so that `Base.metadata`
holds them all (for Alembic's autogenerate and check, and for the tests)."""

from cardsvc.audit import models as audit_models
from cardsvc.cards import models as cards_models
from cardsvc.db import Base
from cardsvc.einvoice import models as einvoice_models
from cardsvc.events import models as events_models
from cardsvc.holders import models as holders_models
from cardsvc.idempotency import models as idempotency_models
from cardsvc.keystore import models as keystore_models
from cardsvc.ledger import models as ledger_models
from cardsvc.library import models as library_models
from cardsvc.notify import models as notify_models
from cardsvc.points import models as points_models
from cardsvc.staff import models as staff_models
from cardsvc.stats import models as stats_models
from merchants.pos import models as pos_models
from merchants.registry import models as registry_models
from merchants.transit import models as transit_models
from settlement.bills import models as bills_models
from settlement.clearing import models as clearing_models
from settlement.subsidies import models as subsidies_models

DOMAINS = (audit_models, cards_models, holders_models, idempotency_models, keystore_models,
           ledger_models, staff_models, library_models, einvoice_models, notify_models,
           events_models, points_models, stats_models,
           registry_models, pos_models, transit_models, clearing_models, bills_models,
           subsidies_models)

__all__ = ["DOMAINS", "Base"]

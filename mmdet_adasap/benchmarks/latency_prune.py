"""The latency-aware pruning benchmark's library part (``tools/benchmark_latency_prune.py`` is its command line):
one-shot prunes, the importance they keep, Taylor scores over training batches, and the clean mAP of a pruned
model before and after a short fine-tune through the Runner."""
import copy

from mmengine.runner import Runner

from mmdet_adasap.apis import fill_channels, load_config
from mmdet_adasap.pruning import ChannelPruner, build_channel_groups, build_importance, save_pruned_checkpoint


def prune_one_shot(model, shape, table, target, ranking, round_to, importance='l2'):
    """A one-shot prune of a copy of ``model`` to ``target``: (the pruner, its exported model in eval mode)."""
    pruner = ChannelPruner(copy.deepcopy(model), shape, target=target, ranking=ranking, latency_table=table,
                           round_to=round_to, importance=copy.deepcopy(importance))
    pruner.prune_one_shot()
    return pruner, pruner.export().eval()


def kept_importance(pruner, dense_scores):
    """Fraction of the dense model's (normalised) importance the prune keeps: the knapsack's objective, a
    data-free proxy for accuracy right after pruning."""
    kept = sum(float(s[pruner.masks.masks[n]].sum()) for n, s in dense_scores.items())
    return kept / sum(float(s.sum()) for s in dense_scores.values())


def taylor_importance(cfg, model, shape, batches: int, normalize):
    """Taylor scores of the dense model over ``batches`` training batches (on a copy: BN statistics untouched)."""
    net = copy.deepcopy(model).train()
    groups = build_channel_groups(net, shape)
    imp = build_importance(dict(type='taylor', normalize=normalize))
    loader = iter(Runner.build_dataloader(cfg.train_dataloader, seed=0))  # the same batches every run
    for _ in range(batches):
        data = net.data_preprocessor(next(loader), True)
        loss, _ = net.parse_losses(net(**data, mode='loss'))
        net.zero_grad(set_to_none=True)
        loss.backward()
        imp.accumulate(groups)
    return imp


def finetune_map(cfg_path, pruned, config, iters: int, work_dir: str):
    """Clean mAP of an exported model after ``iters`` SGD iterations (lr 0.01, the l2prune_sgd recipe's) at its
    own size, through the pruned-model config (PrunedDetector, built at the checkpoint's shapes)."""
    ckpt = save_pruned_checkpoint(f'{work_dir}/start.pth', pruned, config)
    cfg = load_config(cfg_path, work_dir=work_dir)
    cfg.load_from, cfg.param_scheduler, cfg.randomness = ckpt, None, dict(seed=0)
    fill_channels(cfg, ckpt)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=10 ** 9)
    cfg.optim_wrapper.optimizer.lr = 0.01
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10 ** 9, by_epoch=False, save_last=False)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner.test().get('pascal_voc/mAP', float('nan'))


def clean_map(cfg, model, work_dir: str = '/tmp/benchmark_latency_prune'):
    """Clean mAP of ``model`` on the config's test set (the model as it is: nothing is loaded)."""
    cfg = copy.deepcopy(cfg)
    cfg.load_from, cfg.work_dir = None, work_dir
    runner = Runner.from_cfg(cfg)
    runner.model = model
    return runner.test().get('pascal_voc/mAP', float('nan'))

import { Controller, Get, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Owner } from '../auth/owner.decorator';
import { ApiProblems } from '../common/problems/problem.dto';
import { mapSearchHit, SearchHitDto, SearchQueryDto } from './dto/search.dto';
import { SearchService } from './search.service';

@ApiTags('search')
@ApiBearerAuth()
@ApiProblems(401, 429)
@Controller('api/v1/search')
export class SearchController {
  constructor(private readonly searches: SearchService) {}

  @Get()
  @ApiOperation({
    summary: 'Full-text search',
    description:
      'Every word of `q` must match (case- and accent-insensitive, whole words or prefixes); `"quoted phrases"` match as phrases. `session_id` narrows to one session; `archived` as on the list. Each hit has a `snippet` with the matched terms in `[` `]`. See `docs/API.md` § Search.',
  })
  @ApiOkResponse({
    type: [SearchHitDto],
    description:
      'Sessions whose name matches (message null) first, then messages whose content matches; each best match first, ties newest first. ' +
      'A message is searchable as soon as its POST has answered, and never after its DELETE.',
  })
  @ApiProblems(400, 404)
  async search(@Owner() owner: string, @Query() query: SearchQueryDto): Promise<SearchHitDto[]> {
    return (await this.searches.search(owner, query)).map(mapSearchHit);
  }
}

import { Controller, Get, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { Owner } from '../auth/owner.decorator';
import { ApiProblems } from '../common/problem.dto';
import { mapSearchHit, SearchHitDto, SearchQueryDto } from './dto/search.dto';
import { SearchService } from './search.service';

@ApiTags('search')
@ApiBearerAuth()
@ApiProblems(401, 429)
@Controller('api/v1/search')
export class SearchController {
  constructor(private readonly searches: SearchService) {}

  @Get()
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
